// What an entry of an input directory is, with symlinks resolved the way a
// Hugging Face cache snapshot needs: its files are links into ../../blobs/,
// so a link to a regular file counts as that file, wherever it points. Any
// other link is refused with an error that names the entry, not the target.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "df11.h"

namespace df11 {

enum class EntryKind { RegularFile, Directory, Other };

struct InputEntry {
  EntryKind kind = EntryKind::Other;
  bool link = false;  // the entry itself is a symlink (to a regular file)
};

// Classifies root/rel (rel uses '/'). A symlink resolving to a regular file
// gives {RegularFile, link = true}; one that dangles or loops fails with
// DirLinkDangling, one to a directory with DirLinkToDirectory, one to anything
// else with DirLinkNotRegular. A directory that is not a link gives Directory;
// a non-link special file gives Other (the caller decides). The error's label
// is root/rel.
Status classify_input_entry(const std::string& root, const std::string& rel, InputEntry* out);

// For a path that a manifest or index names inside root: every directory on
// the way must be a real directory, never a link (DirLinkToDirectory: a link
// there would let a path the manifest calls "inside" read from anywhere), and
// the last component must be a regular file or a link to one. A missing file
// is Io "no such file".
Status check_input_file(const std::string& root, const std::string& rel);

// Lists the regular files and directories under root ('/'-separated relative
// paths, sorted), classified by classify_input_entry: links to regular files
// count as files and go to *links; any other link fails with its named error,
// a special file with DirUnsupportedEntry, a name that check_entry_name
// refuses with DirUnsupportedName. A subdirectory that cannot be read fails
// with Io naming it: no entry is ever left out silently.
Status scan_dir(const std::string& root, std::vector<std::string>* files, std::vector<std::string>* dirs,
                std::set<std::string>* links);

// The rule for every name in a directory that df11 records: valid UTF-8 (a
// manifest is JSON) and a path that manifest readers accept
// (safe_relative_path: no backslash, no NUL, no empty, "." or ".." part).
// Checked when writing, so that a directory df11 writes can always be read
// back. DirUnsupportedName otherwise, labelled root/rel.
Status check_entry_name(const std::string& root, const std::string& rel);

}  // namespace df11
