// Mappings whose pages may vanish under df11: a file cut short by another
// process while df11 reads it through its mapping (or its output's, while
// stores go in) makes the next load or store SIGBUS, which killed df11 with
// no message and left its temporary output behind. Once the handler is
// installed (install_fault_handler, the df11 command), a fault inside a
// registered mapping maps a zero page in place of the missing one, marks the
// mapping, and returns: the load reads zeros, the store goes nowhere, and the
// operation goes on to its checks, which fail because the file changed
// (MappedFile::check_unchanged, AtomicOutputFile::commit), so the temporary
// is removed as after any error. A fault anywhere else gets the action that
// was installed before (by default: terminate with a core dump).
#pragma once
#include <cstdint>

namespace df11::fault_guard {

// A slot for [begin, begin + size), mapped with `prot`; -1 when every slot is
// taken (that mapping then faults as before). Thread-safe.
int add(const void* begin, uint64_t size, int prot) noexcept;
void remove(int slot) noexcept;  // -1 is a no-op
// Whether a page of the slot's mapping has been replaced by zeros.
bool faulted(int slot) noexcept;

}  // namespace df11::fault_guard
