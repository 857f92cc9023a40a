"""Published OTA packets used as known-answer data.

Source: osmocom pySim, tests/unittests/test_ota.py (class SmsOtaTestCase, dataset
'AES128-SJA5-CIPHERED-CC', and Test_SMS_AES128): keyset OTA_KEYSET_SJA5_AES128 (KIc/KID index 2,
aes_cbc / aes_cmac), TAR B00011, SPI 'counter': 'no_counter', ciphering, CC, PoR required,
PoR ciphered with CC, PoR in SMS-DELIVER-REPORT (= SPI 06 19), CNTR 0.
"""
PYSIM_AES_KIC = bytes.fromhex("200102030405060708090a0b0c0d0e0f")
PYSIM_AES_KID = bytes.fromhex("201102030405060708090a0b0c0d0e0f")
PYSIM_AES_KEY_INDEX = 2
PYSIM_TAR = bytes.fromhex("b00011")
PYSIM_SPI = bytes.fromhex("0619")
PYSIM_APDU = bytes.fromhex("00a40004023f00")  # SELECT MF
# 'encoded_cmd': the command packet, CPL first.
PYSIM_AES_COMMAND = bytes.fromhex(
    "00281506192222b00011e87cceebb2d93083011ce294f93fc4d8de80da1abae8c37ca3e72ec4432e5058")
# 'encoded_resp': SMS user data of the PoR (UDHL 02, IEI 71, IEIDL 00, then RPL ...).
# Compact remote response (TS 102 226 §5.1.2): 1 command, last SW 6132, no data.
PYSIM_AES_RESPONSE_UD = bytes.fromhex(
    "027100002412b00011ebc6b497e2cad7aedf36ace0e3a29b38853f0fe9ccde81913be5702b73abce1f")
PYSIM_AES_RESPONSE_DATA = bytes.fromhex("016132")
# 'encoded_tpdu': the SMS-DELIVER carrying the command. NOTE: the published TPDU has TP-UDL = 03
# (pySim's test passes tp_udl=3) although the user data is 45 octets; 3GPP TS 23.040 §9.2.3.16
# makes TP-UDL the octet count of the whole user data (UDH included) for 8-bit data. Our
# strict parser rejects it; PYSIM_AES_TPDU_FIXED has TP-UDL = 0x2D and is otherwise identical.
PYSIM_AES_TPDU = bytes.fromhex(
    "400881214365877ff6227052000000000302700000281506192222b00011e87cceebb2d93083011ce294f9"
    "3fc4d8de80da1abae8c37ca3e72ec4432e5058")
PYSIM_AES_TPDU_FIXED = PYSIM_AES_TPDU[:16] + b"\x2d" + PYSIM_AES_TPDU[17:]
PYSIM_ORIGINATING_ADDRESS = "12345678"  # AddressField('12345678', 'unknown', 'isdn_e164')
PYSIM_SCTS = bytes.fromhex("22705200000000")
