//! Eight bytes at a time: which bytes of a word equal a given byte.

/// `0x01` in every byte.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `word` that equals `byte`, exactly (no borrow from one byte
/// into the next, so no false positives).
#[inline]
pub(crate) fn byte_mask(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let zero_where_equal = word ^ (ONES * u64::from(byte));
    !(((zero_where_equal & LOW7) + LOW7) | zero_where_equal | LOW7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_exactly_the_equal_bytes() {
        for byte in [0u8, b'\t', b'\\', b'"', 0x7f, 0x80, 0xff] {
            for other in 0..=255u8 {
                let word = u64::from_le_bytes([other, byte, other, 0, byte, 0xff, other, byte]);
                let expected = [other, byte, other, 0, byte, 0xff, other, byte]
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == byte)
                    .fold(0u64, |mask, (i, _)| mask | 0x80 << (8 * i));
                assert_eq!(
                    byte_mask(word, byte),
                    expected,
                    "{byte:#x} among {other:#x}"
                );
            }
        }
    }
}
