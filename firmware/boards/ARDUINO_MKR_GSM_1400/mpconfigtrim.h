// What the MKR GSM 1400 image leaves out, to make room for the frozen firmware (lib/) and a
// file system of at least 32 KB. Included as MP_CONFIGFILE (mpconfigboard.mk): it includes
// the port's mpconfigport.h first and then overrides, because ports/samd's mpconfigmcu.h
// defines most of these without #ifndef, so mpconfigboard.h (included before it) cannot.
//
// Kept: machine Pin/UART (RTS/CTS)/I2C/WDT/ADC/RTC/Timer, samd.Flash, os (+ urandom), time,
// json, sys, struct, array, collections, math, micropython (const, mem_info), vfs + littlefs
// v1 (the port's frozen _boot.py mounts it), the REPL with raw REPL, raw paste, Ctrl-C and
// tab completion. That is everything lib/*.py uses (micropython.const, json, os incl. uname,
// time, machine Pin/UART/I2C/ADC/WDT, sys) and everything mpremote's exec/ls/cp/rm/mkdir use
// (os.ilistdir/stat/mkdir/remove/rename, open, print). machine.bootloader() stays but does
// not reach SAM-BA on the MKR: it writes the UF2 bootloaders' double-tap magic (0xf01669ef,
// ports/samd/modmachine.c), Arduino's bootloader waits for 0x07738135; double-tap RESET.
//
// Off, with the flash each saves: bytes of the code region, measured on 2026-12-07 by
// building this configuration (199,432 B with that day's lib/) with that one feature turned
// back on. All of them together save 20,240 B (the stock features need 219,672 B).
//   help() + its module list  1,048    uctypes     2,896    heapq                 496
//   random                      392    platform      296    re                  2,536
//   binascii                    712    io.IOBase     248    os.dupterm            800
//   machine.DAC                 404    machine.PWM 1,812    machine.SPI         1,952
//   machine.SoftSPI           1,832    SPI + SoftSPI together (shared extmod code)  3,192
//   machine.SoftI2C           1,328    bitstream     424    time_pulse_us         240
//   dht_readinto                 20 (drivers/dht needs time_pulse_us, off too)
//   machine.USBDevice         2,932
// os.uname, turned on below, costs 212 B.
//
// Already off at this code size (SAMD21_EXTRA_FEATURES is 1 only at 236K): framebuf, asyncio,
// select, errno, deflate, onewire, machine.I2CTarget, UART irq, the native emitters.
#include "mpconfigport.h"

// On, though the port leaves it off: lib/ztpmain.py picks the board profile from
// os.uname().machine ("Arduino MKR GSM 1400 with SAMD21G18A").
#undef MICROPY_PY_OS_UNAME
#define MICROPY_PY_OS_UNAME                 (1)

// help() and its text
#undef MICROPY_PY_BUILTINS_HELP
#define MICROPY_PY_BUILTINS_HELP            (0)
#undef MICROPY_PY_BUILTINS_HELP_MODULES
#define MICROPY_PY_BUILTINS_HELP_MODULES    (0)
// modules lib/ does not import
#undef MICROPY_PY_UCTYPES
#define MICROPY_PY_UCTYPES                  (0)
#undef MICROPY_PY_HEAPQ
#define MICROPY_PY_HEAPQ                    (0)
#undef MICROPY_PY_RANDOM
#define MICROPY_PY_RANDOM                   (0)
#undef MICROPY_PY_PLATFORM
#define MICROPY_PY_PLATFORM                 (0)
#undef MICROPY_PY_RE
#define MICROPY_PY_RE                       (0)
#undef MICROPY_PY_BINASCII
#define MICROPY_PY_BINASCII                 (0)
#undef MICROPY_PY_IO_IOBASE
#define MICROPY_PY_IO_IOBASE                (0)
#undef MICROPY_PY_OS_DUPTERM
#define MICROPY_PY_OS_DUPTERM               (0)
// machine classes and functions lib/ does not use (nothing is wired to them on this board
// but header pins)
#undef MICROPY_PY_MACHINE_DAC
#define MICROPY_PY_MACHINE_DAC              (0)
#undef MICROPY_PY_MACHINE_PWM
#define MICROPY_PY_MACHINE_PWM              (0)
#undef MICROPY_PY_MACHINE_SPI
#define MICROPY_PY_MACHINE_SPI              (0)
#undef MICROPY_PY_MACHINE_SOFTSPI
#define MICROPY_PY_MACHINE_SOFTSPI          (0)
#undef MICROPY_PY_MACHINE_SOFTI2C
#define MICROPY_PY_MACHINE_SOFTI2C          (0)
#undef MICROPY_PY_MACHINE_BITSTREAM
#define MICROPY_PY_MACHINE_BITSTREAM        (0)
#undef MICROPY_PY_MACHINE_PULSE
#define MICROPY_PY_MACHINE_PULSE            (0)
#undef MICROPY_PY_MACHINE_DHT_READINTO
#define MICROPY_PY_MACHINE_DHT_READINTO     (0)
// machine.USBDevice (USB descriptors changed at run time); the USB CDC REPL stays
#undef MICROPY_HW_ENABLE_USB_RUNTIME_DEVICE
#define MICROPY_HW_ENABLE_USB_RUNTIME_DEVICE (0)
