#include "fault_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "df11.h"

namespace df11 {
namespace fault_guard {
namespace {

// Lock-free, so that the handler can read it while other threads add and
// remove mappings (a slot's range is published last, through begin).
struct Slot {
  std::atomic<bool> used{false};
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<int> prot{0};
  std::atomic<bool> faulted{false};
};
// A slot per open mapping; df11 holds a few per worker (input, output,
// spool), so 1024 leaves room for any -T.
constexpr int kSlots = 1024;
Slot g_slots[kSlots];
uintptr_t g_page = 4096;
struct sigaction g_previous {};

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // A SIGBUS sent by kill(2) (si_code <= 0) carries no fault address.
  const auto a = info->si_code > 0 ? reinterpret_cast<uintptr_t>(info->si_addr) : 0;
  for (int i = 0; a != 0 && i < kSlots; ++i) {
    Slot& s = g_slots[i];
    const uintptr_t b = s.begin.load(std::memory_order_acquire);
    if (b == 0 || a < b || a >= s.end.load(std::memory_order_acquire)) continue;
    // mmap is a plain system call: safe here in practice, as on Linux every
    // runtime that turns such faults into errors does it (POSIX does not list it).
    void* page = reinterpret_cast<void*>(a & ~(g_page - 1));
    if (::mmap(page, g_page, s.prot.load(std::memory_order_relaxed), MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
        MAP_FAILED) {
      s.faulted.store(true, std::memory_order_release);
      errno = saved_errno;
      return;  // the load or store runs again, on the zero page
    }
    break;
  }
  // Not ours: the action installed before, as if this handler were not there.
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
    g_previous.sa_sigaction(sig, info, context);
    errno = saved_errno;
    return;
  }
  if (g_previous.sa_handler == SIG_IGN && info->si_code <= 0) {  // a fault cannot be ignored: the default
    errno = saved_errno;
    return;
  }
  if (g_previous.sa_handler == SIG_IGN) g_previous.sa_handler = SIG_DFL;
  if (g_previous.sa_handler != SIG_DFL) {
    g_previous.sa_handler(sig);
    errno = saved_errno;
    return;
  }
  // The default action: from a fault, it follows on the retried access once
  // the default is back; a signal sent by kill(2) is raised again.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGBUS, &dfl, nullptr);
  if (info->si_code <= 0) raise(SIGBUS);
  errno = saved_errno;
}

}  // namespace

int add(const void* begin, uint64_t size, int prot) noexcept {
  if (!begin || size == 0) return -1;
  for (int i = 0; i < kSlots; ++i) {
    Slot& s = g_slots[i];
    if (s.used.exchange(true, std::memory_order_acq_rel)) continue;
    s.faulted.store(false, std::memory_order_relaxed);
    s.prot.store(prot, std::memory_order_relaxed);
    s.end.store(reinterpret_cast<uintptr_t>(begin) + size, std::memory_order_release);
    s.begin.store(reinterpret_cast<uintptr_t>(begin), std::memory_order_release);
    return i;
  }
  return -1;
}

void remove(int slot) noexcept {
  if (slot < 0 || slot >= kSlots) return;
  Slot& s = g_slots[slot];
  s.begin.store(0, std::memory_order_release);
  s.end.store(0, std::memory_order_release);
  s.used.store(false, std::memory_order_release);
}

bool faulted(int slot) noexcept {
  return slot >= 0 && slot < kSlots && g_slots[slot].faulted.load(std::memory_order_acquire);
}

}  // namespace fault_guard

void install_fault_handler() {
  // Installed already (and not replaced since, as a test framework may do
  // around each test): nothing to do; chaining to itself would loop.
  struct sigaction current {};
  if (sigaction(SIGBUS, nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) &&
      current.sa_sigaction == fault_guard::on_sigbus)
    return;
  fault_guard::g_page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  struct sigaction sa {};
  sa.sa_sigaction = fault_guard::on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &fault_guard::g_previous);
}

}  // namespace df11
