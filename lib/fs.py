# fs: the flash file system as the firmware uses it, and small atomic-write helpers.
#
# The firmware never calls open()/os directly: it is handed an object with
#   open(path, mode) -> file (read/readinto/write/close), rename(a, b) (replaces b),
#   remove(path), exists(path)
# OsFs maps that onto the board's VFS (littlefs on the SAMD port: rename replaces the target
# atomically). Tests use an in-memory file system with fault injection (host_tests/firmware).

import os


class OsFs:
    def open(self, path, mode):
        return open(path, mode)

    def rename(self, a, b):
        os.rename(a, b)

    def remove(self, path):
        os.remove(path)

    def exists(self, path):
        try:
            os.stat(path)
            return True
        except OSError:
            return False

    def mkdir(self, path):
        if not self.exists(path):
            os.mkdir(path)


def read_into(fs, path, buf):
    # reads a whole small file into buf; returns its length, -1 if missing.
    # Raises ValueError if it does not fit.
    if not fs.exists(path):
        return -1
    f = fs.open(path, "rb")
    try:
        n = 0
        while n < len(buf):
            k = f.readinto(memoryview(buf)[n:])
            if not k:
                break
            n += k
        if n == len(buf) and f.read(1):
            raise ValueError("%s: larger than %d bytes" % (path, len(buf)))
        return n
    finally:
        f.close()


def write_atomic(fs, path, data, n=-1):
    # writes data[:n] to path.tmp, then renames it over path: a failure at any point leaves
    # the old path untouched (the temp file is removed on error)
    if n < 0:
        n = len(data)
    tmp = path + ".tmp"
    try:
        f = fs.open(tmp, "wb")
        try:
            k = 0
            while k < n:
                w = f.write(memoryview(data)[k:n])
                if not w:
                    raise OSError(28)   # ENOSPC: no progress
                k += w
        finally:
            f.close()
        fs.rename(tmp, path)
    except Exception:
        try:
            fs.remove(tmp)
        except Exception:
            pass
        raise


def read_small_int(fs, path, default):
    # a decimal integer stored in a tiny file; default if missing or unreadable
    b = bytearray(8)
    try:
        n = read_into(fs, path, b)
    except (OSError, ValueError):
        return default
    if n <= 0:
        return default
    v = 0
    for i in range(n):
        c = b[i]
        if c < 48 or c > 57:
            return default
        v = v * 10 + c - 48
    return v
