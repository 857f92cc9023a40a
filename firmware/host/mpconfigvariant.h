// The board-faithful heap run: MicroPython's unix port configured as the MKR GSM 1400's samd21
// build, as far as the unix port allows, so that the same frozen lib/ runs main.py from
// power-up in a 32-bit process with the board's GC heap (-X heapsize). Built by
// tools/ztp/firmware/_heap.py with MICROPY_FORCE_32BIT=1 (mpconfigvariant.mk); machine is the
// frozen host double (machine.py here), not the unix port's module.
//
// Sources mirrored (MicroPython v1.28.0): ports/samd/mpconfigport.h (the port),
// ports/samd/mcu/samd21/mpconfigmcu.h (SAMD21, SAMD21_EXTRA_FEATURES = 0 below 236K of code)
// and the board's trims (firmware/boards/ARDUINO_MKR_GSM_1400/mpconfigtrim.h), the latter
// generated into ztp_board_config.h in the build directory (tools/ztp/firmware/_heap_board.py).
// What the unix port decides on its own (it defines these after this file, unconditionally):
// MICROPY_VFS_POSIX and MICROPY_READER_POSIX (used only by the setup run and the harness:
// power-up unmounts the posix root), MICROPY_ALLOC_PATH_MAX (PATH_MAX, stack only), the
// GC register scan, MICROPY_EMIT_X86 (turned off here), MICROPY_PY_SYS_EXECUTABLE.

// ---- ports/samd/mcu/samd21/mpconfigmcu.h --------------------------------------------------
#define MICROPY_CONFIG_ROM_LEVEL        (MICROPY_CONFIG_ROM_LEVEL_BASIC_FEATURES)

// emitters: none (samd21 native/inline thumb only with SAMD21_EXTRA_FEATURES)
#define MICROPY_EMIT_X86                (0)
#define MICROPY_EMIT_X64                (0)
#define MICROPY_EMIT_INLINE_THUMB       (0)
#define MICROPY_MODULE_BUILTIN_INIT     (1)

// "Selected extensions beyond the basic features set"
#define MICROPY_ENABLE_FINALISER        (1)
#define MICROPY_STACK_CHECK             (1)
#define MICROPY_KBD_EXCEPTION           (1)
#define MICROPY_HELPER_REPL             (1)
#define MICROPY_REPL_AUTO_INDENT        (1)
#define MICROPY_ENABLE_SOURCE_LINE      (1)
#define MICROPY_STREAMS_NON_BLOCK       (1)
#define MICROPY_PY_BUILTINS_HELP        (1)
#define MICROPY_PY_BUILTINS_HELP_MODULES (1)
#define MICROPY_ENABLE_SCHEDULER        (1)
#define MICROPY_PY_BUILTINS_BYTES_HEX   (1)
#define MICROPY_PY_BUILTINS_MEMORYVIEW  (1)
#define MICROPY_PY_BUILTINS_INPUT       (1)
#define MICROPY_PY_MICROPYTHON_MEM_INFO (1)
#define MICROPY_PY_ARRAY_SLICE_ASSIGN   (1)
#define MICROPY_PY_SYS_STDFILES         (1)
#define MICROPY_PY_SYS_MAXSIZE          (1)
#define MICROPY_PY_IO_IOBASE            (1)
#define MICROPY_PY_OS                   (1)
#define MICROPY_PY_JSON                 (1)
#define MICROPY_PY_RE                   (1)
#define MICROPY_PY_BINASCII             (1)
#define MICROPY_PY_UCTYPES              (1)
#define MICROPY_PY_HEAPQ                (1)
#define MICROPY_PY_RANDOM               (1)
#define MICROPY_PY_PLATFORM             (1)
#define MICROPY_PY_OS_URANDOM           (1)

// SAMD21_EXTRA_FEATURES = 0 (MICROPY_HW_CODESIZE below 236K): all of these are off
#define MICROPY_COMP_TRIPLE_TUPLE_ASSIGN (0)
#define MICROPY_COMP_RETURN_IF_EXPR     (0)
#define MICROPY_OPT_MPZ_BITWISE         (0)
#define MICROPY_PY_BUILTINS_STR_CENTER  (0)
#define MICROPY_PY_BUILTINS_STR_PARTITION (0)
#define MICROPY_PY_BUILTINS_STR_SPLITLINES (0)
#define MICROPY_PY_BUILTINS_ROUND_INT   (0)
#define MICROPY_CAN_OVERRIDE_BUILTINS   (0)
#define MICROPY_PY_SYS_STDIO_BUFFER     (0)
#define MICROPY_PY_FRAMEBUF             (0)
#define MICROPY_PY_ASYNCIO              (0)
#define MICROPY_PY_SELECT               (0)
#define MICROPY_PY_ERRNO                (0)
#define MICROPY_PY_DEFLATE              (0)
#define MICROPY_PY_ONEWIRE              (0)

// ---- ports/samd/mpconfigport.h --------------------------------------------------------------
#define MICROPY_GC_STACK_ENTRY_TYPE     uint16_t
#define MICROPY_GC_ALLOC_THRESHOLD      (0)
#define MICROPY_PERSISTENT_CODE_LOAD    (1)
#define MICROPY_LONGINT_IMPL            (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL              (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_PY_BUILTINS_COMPLEX     (0)
#define MICROPY_ERROR_REPORTING         (MICROPY_ERROR_REPORTING_TERSE)
#define MICROPY_SCHEDULER_STATIC_NODES  (1)
#define MICROPY_PY_SYS_PLATFORM         "samd"
// MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME: the unix time module has its own gmtime/localtime
#define MICROPY_PY_TIME_TIME_TIME_NS    (1)
#define MICROPY_VFS_ROM                 (0)   // samd: 1, but the MKR board has 0 bytes of ROMFS
#define MICROPY_PY_MACHINE              (0)   // the frozen double (machine.py) instead

// ---- what the unix port needs to run at all ----------------------------------------------
// time: the unix module (ticks_ms/us, sleep_ms/us, ticks_diff: what lib/ uses)
#define MICROPY_PY_TIME                 (1)
#define MICROPY_PY_TIME_CUSTOM_SLEEP    (1)
#define MICROPY_PY_TIME_INCLUDEFILE     "ports/unix/modtime.c"
// os: the unix module (adds getenv: the doubles read their wiring from the environment)
#define MICROPY_PY_OS_INCLUDEFILE       "ports/unix/modos.c"
#define MICROPY_PY_OS_GETENV_PUTENV_UNSETENV (1)
// unix main.c reads mp_verbose_flag when MICROPY_PY_MICROPYTHON_MEM_INFO (only with -v)
#define MICROPY_DEBUG_PRINTERS          (1)
// sys.path at start: "" and ".frozen", as mp_init gives the board; _boot adds "/lib"
#define MICROPY_PY_SYS_PATH_DEFAULT     ".frozen"

// ---- what the harness needs ----------------------------------------------------------------
// power-up runs boot.py and main.py from the littlefs as pyexec_file does: compiled from the
// file into the same globals (ztp_powerup.py)
#define MICROPY_PY_BUILTINS_EXECFILE    (1)

// The board's trims (generated from the board definition, see the header comment).
#include "ztp_board_config.h"
