# host stub of the MicroPython module: const() is the identity
def const(x):
    return x

