//! HJ 212 frames for tests, written out independently of src/.

/// `##LLLL<data>CCCC\r\n` with the HJ 212 CRC (standards.md §6.2).
#[allow(dead_code)]
pub fn wrap(data: &str) -> String {
    let mut crc: u16 = 0xFFFF;
    for b in data.bytes() {
        crc = (crc >> 8) ^ b as u16;
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb == 1 {
                crc ^= 0xA001;
            }
        }
    }
    format!("##{:04}{data}{crc:04X}\r\n", data.len())
}
