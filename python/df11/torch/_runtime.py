"""Decoding units into the shared scratch buffer at forward time.

Three launchers, one interface (launch(unit) from a forward pre-hook,
check(), close()):
- GpuResident: every unit's image stays in GPU memory; launch = one
  df11_plan_launch on torch's current stream. No allocation, no copy, no host
  synchronization.
- GpuOffload: images stay in pinned host memory. Two device slots hold
  images; while unit k decodes and computes from one slot, unit k+1's image
  is copied into the other on a side stream. Events order the two streams:
  a copy into a slot waits for the last decode that read the slot
  (decode_done), and a decode waits for the copy that filled its slot
  (copy_done). Plans exist per (unit, slot).
- Cpu: decodes on the CPU (df11_decode_host) into a host scratch buffer; for
  CPU inference and for testing the loader without a GPU.
"""

import torch

from .._gpu import Plan, current_stream_ptr


class _Base:
    def __init__(self, file, units, scratch):
        self.file = file
        self.units = units
        self.scratch = scratch
        self.launches = 0

    def outputs_of(self, unit):
        return [self.scratch[o:o + n] for o, n in zip(unit.offsets, unit.nbytes)]

    def check(self):
        pass

    def close(self):
        pass


class Cpu(_Base):
    def __init__(self, file, units, scratch, threads=0):
        super().__init__(file, units, scratch)
        self.threads = threads

    def launch(self, unit):
        base = self.scratch.data_ptr()
        for i, o, n in zip(unit.indices, unit.offsets, unit.nbytes):
            self.file.decode_into(i, base + o, n, self.threads)
        self.launches += 1


def _pack_to_pinned(file, unit, size):
    host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    file.pack_into(unit.indices, host.data_ptr(), size)
    return host


class GpuResident(_Base):
    def __init__(self, file, units, scratch):
        super().__init__(file, units, scratch)
        dev = scratch.device
        self.device = dev
        self.plans = {}
        sizes = {u.key: file.image_size(u.indices) for u in units}
        # One pinned staging buffer for all uploads (synchronized per unit),
        # so that loading needs only the largest image in host memory.
        staging = torch.empty(max(sizes.values(), default=0), dtype=torch.uint8, pin_memory=True)
        stream = torch.cuda.current_stream(dev)
        for u in units:
            size = sizes[u.key]
            file.pack_into(u.indices, staging.data_ptr(), size)
            image = torch.empty(size, dtype=torch.uint8, device=dev)
            image.copy_(staging[:size], non_blocking=True)
            # Plan creation synchronizes the stream: the copy is done before
            # `staging` is refilled for the next unit.
            self.plans[u.key] = Plan(file, u.indices, image, self.outputs_of(u), stream)  # keeps `image`
        self.image_bytes = sum(sizes.values())

    def launch(self, unit):
        self.plans[unit.key].launch_raw(current_stream_ptr(self.device.index))
        self.launches += 1

    def check(self):
        stream = torch.cuda.current_stream(self.device)
        for p in self.plans.values():
            p.check(stream)

    def close(self):
        for p in self.plans.values():
            p.close()
        self.plans = {}


class GpuOffload(_Base):
    def __init__(self, file, units, scratch):
        super().__init__(file, units, scratch)
        dev = scratch.device
        self.device = dev
        sizes = {u.key: file.image_size(u.indices) for u in units}
        self.host_images = {u.key: _pack_to_pinned(file, u, sizes[u.key]) for u in units}
        slot_bytes = max(sizes.values(), default=0)
        self.slots = [torch.empty(slot_bytes, dtype=torch.uint8, device=dev) for _ in range(2)]
        self.copy_stream = torch.cuda.Stream(dev)
        self.copy_done = [torch.cuda.Event() for _ in range(2)]
        self.decode_done = [torch.cuda.Event() for _ in range(2)]
        self.slot_unit = [None, None]  # key of the unit whose image is in (or on its way to) each slot
        self.last_slot = 1
        # The next unit to prefetch after each one: the static order first,
        # then whatever order the model really used (learned as it runs).
        self.next_of = {u.key: units[(k + 1) % len(units)].key for k, u in enumerate(units)}
        self.by_key = {u.key: u for u in units}
        self.prev_key = None
        stream = torch.cuda.current_stream(dev)
        self.plans = {}
        for u in units:
            for s in range(2):
                self.plans[(u.key, s)] = Plan(file, u.indices, self.slots[s][:sizes[u.key]],
                                              self.outputs_of(u), stream)
        self.image_bytes = sum(sizes.values())
        self.slot_bytes = slot_bytes

    def _copy(self, key, s):
        cs = self.copy_stream
        cs.wait_event(self.decode_done[s])  # the last decode reading slot s is done with it
        host = self.host_images[key]
        with torch.cuda.stream(cs):
            self.slots[s][:host.numel()].copy_(host, non_blocking=True)
        self.copy_done[s].record(cs)
        self.slot_unit[s] = key

    def launch(self, unit):
        key = unit.key
        # A torch Stream, not the raw pointer: the event waits and records
        # below need one (the copy and the decode dwarf its cost).
        cur = torch.cuda.current_stream(self.device)
        if self.prev_key is not None and self.next_of.get(self.prev_key) != key:
            self.next_of[self.prev_key] = key  # learn the real order of use
        self.prev_key = key
        if self.slot_unit[0] == key:
            s = 0
        elif self.slot_unit[1] == key:
            s = 1
        else:  # not prefetched: copy now, into the slot the last decode did not use
            s = 1 - self.last_slot
            self._copy(key, s)
        cur.wait_event(self.copy_done[s])
        self.plans[(key, s)].launch_raw(cur.cuda_stream)
        self.decode_done[s].record(cur)
        self.last_slot = s
        self.launches += 1
        nxt = self.next_of.get(key)
        o = 1 - s
        if nxt is not None and nxt != key and self.slot_unit[o] != nxt:
            self._copy(nxt, o)  # overlaps this unit's compute

    def check(self):
        stream = torch.cuda.current_stream(self.device)
        for p in self.plans.values():
            p.check(stream)

    def close(self):
        torch.cuda.current_stream(self.device).synchronize()
        self.copy_stream.synchronize()
        for p in self.plans.values():
            p.close()
        self.plans = {}
