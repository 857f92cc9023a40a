// Arduino MKR GSM 1400: SAMD21G18A, 32.768 kHz crystal, u-blox SARA-U201 on SERCOM4 with
// RTS/CTS, BQ24195L charger and ATECC508A crypto chip on I2C SERCOM2. See mpconfigboard.mk
// for the flash layout and mpconfigtrim.h for what this build leaves out.
#define MICROPY_HW_BOARD_NAME "Arduino MKR GSM 1400"
#define MICROPY_HW_MCU_NAME   "SAMD21G18A"

// The board has a 32.768 kHz crystal on PA00/PA01 (variant.cpp pins 33/34, XIN32/XOUT32).
#define MICROPY_HW_XOSC32K    (1)

// The modem UART needs RTS/CTS; on the SAMD21 they are otherwise only compiled in at 236K.
#define MICROPY_HW_UART_RTSCTS (1)

// Layout (see firmware/README.md): the modem is UART 4 = SERCOM4, pads 0-3 on PA12-PA15
// (peripheral D: pin-af-table.csv column SERCOM2 = 40..43), as Arduino's Serial2. I2C stays
// on SERCOM2 (PA08 SDA pad 0, PA09 SCL pad 1, peripheral D: 20/21), as Arduino's
// PERIPH_WIRE: the PMIC at 0x6B and the crypto chip at 0x60. PA12-PA15 are also SERCOM2
// pads 0-3 on peripheral C, so a modem UART 2 would take the I2C bus's SERCOM away.
#define MICROPY_HW_DEFAULT_UART_ID (4)
#define MICROPY_HW_DEFAULT_I2C_ID  (2)
// UART() with no pins gets the modem's TX/RX (machine_uart.c uses pin_TX/pin_RX; the header's
// Serial1 pins D13/D14 are on SERCOM5, so they cannot be UART 4's defaults). RTS/CTS are
// never defaulted: give rts=/cts= (GSM_RTS/GSM_CTS) to turn flow control on.
#define pin_TX pin_GSM_TX
#define pin_RX pin_GSM_RX
