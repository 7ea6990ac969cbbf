"""The generator of native/base/rng.ts, bit for bit: mulberry32 with its whole state in one 32-bit number.

Every random draw of a Flaneur run (frames, clips, crop boxes, flips, colour jitter, grayscale, blur, Dora's heads,
drop-path masks) comes from this generator in the same order as Flaneur's trainer, so the exported program sees the
same augmentations as Flaneur would, and a checkpoint's `rngState` resumes either side.
"""
import math

M32 = 0xFFFFFFFF


def _imul(a, b):
    return (a * b) & M32


class Rng:
    def __init__(self, state):
        self.state = int(state) & M32

    def next(self):
        self.state = (self.state + 0x6D2B79F5) & M32
        t = self.state
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296.0

    def uniform(self, lo, hi):
        return lo + (hi - lo) * self.next()

    def int(self, n):
        return math.floor(self.next() * n)

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.int(i + 1)
            items[i], items[j] = items[j], items[i]
        return items
