#include "df11_errors.h"

namespace df11 {

const char* error_name(Error e) noexcept {
  switch (e) {
#define DF11_NAME(x) case Error::x: return #x;
    DF11_NAME(Ok) DF11_NAME(Usage) DF11_NAME(Io) DF11_NAME(OutputExists) DF11_NAME(Interrupted)
    DF11_NAME(CudaUnavailable) DF11_NAME(CudaError)
    DF11_NAME(StTruncated) DF11_NAME(StHeaderTooLarge) DF11_NAME(StHeaderPastEnd)
    DF11_NAME(StHeaderNotUtf8) DF11_NAME(StHeaderInvalidJson) DF11_NAME(StDuplicateName)
    DF11_NAME(StUnknownDtype) DF11_NAME(StInvalidShape) DF11_NAME(StInvalidOffsets)
    DF11_NAME(StOffsetsReversed) DF11_NAME(StSizeMismatch) DF11_NAME(StOffsetsOverlap)
    DF11_NAME(StOffsetsHole) DF11_NAME(StOffsetsOutOfBounds) DF11_NAME(StTrailingBytes)
    DF11_NAME(StInvalidMetadata) DF11_NAME(StInvalidTensorEntry)
    DF11_NAME(DirIndexInvalid) DF11_NAME(DirIndexMissingShard) DF11_NAME(DirIndexBadPath)
    DF11_NAME(DirManifestInvalid) DF11_NAME(DirUnsupportedEntry)
    DF11_NAME(Df11Truncated) DF11_NAME(Df11BadMagic) DF11_NAME(Df11UnsupportedVersion)
    DF11_NAME(Df11HeaderChecksum) DF11_NAME(Df11BadHeaderField) DF11_NAME(Df11BadIndex)
    DF11_NAME(Df11NonzeroPadding) DF11_NAME(Df11BadCodeLengths) DF11_NAME(Df11BadGaps)
    DF11_NAME(Df11BadBlockOffsets) DF11_NAME(Df11StreamCorrupt) DF11_NAME(Df11ZstdCorrupt)
    DF11_NAME(Df11TensorChecksum) DF11_NAME(Df11FileChecksum)
    DF11_NAME(VerifyMismatch)
    DF11_NAME(DirDuplicateTensor) DF11_NAME(OutOfMemory) DF11_NAME(Internal)
    DF11_NAME(DirLinkDangling) DF11_NAME(DirLinkToDirectory) DF11_NAME(DirLinkNotRegular)
    DF11_NAME(OutputIsLink)
    DF11_NAME(ExportConfigInvalid) DF11_NAME(ExportAlreadyDf11) DF11_NAME(ExportDuplicateTensor)
    DF11_NAME(DirUnsupportedName)
    DF11_NAME(TensorNameHasNul)
    DF11_NAME(OutputNotRegular)
#undef DF11_NAME
  }
  return "Unknown";
}

int exit_code(Error e) noexcept {
  switch (e) {
    case Error::Ok: return 0;
    case Error::Usage: return 2;
    // Data that was written by df11 and no longer matches itself: corrupt, exit 1.
    case Error::Df11HeaderChecksum:
    case Error::Df11NonzeroPadding:
    case Error::Df11BadCodeLengths:
    case Error::Df11BadGaps:
    case Error::Df11BadBlockOffsets:
    case Error::Df11StreamCorrupt:
    case Error::Df11ZstdCorrupt:
    case Error::Df11TensorChecksum:
    case Error::Df11FileChecksum:
    case Error::Df11BadIndex:
    case Error::Df11BadHeaderField:
    case Error::Df11Truncated:
    case Error::VerifyMismatch:
      return 1;
    default:
      return 3;
  }
}

ThreadStartError::ThreadStartError(const std::error_code& ec)
    : ec_(ec), what_(std::make_shared<const std::string>("cannot start a thread: " + ec.message())) {}

}  // namespace df11
