//! The content key of a request whose RSA key transport fails (RFC 3218 §2.3.2, implicit
//! rejection): a wrong PKCS#1 v1.5 padding must not be told apart from a right one.
//!
//! The key used in its place is derived from the encrypted key itself, not drawn at random:
//! with a fresh random key each time, the same encrypted key sent twice would decrypt the
//! content to two different results when its padding was wrong, and to the same one when it
//! was right — a Bleichenbacher oracle again (the "Marvin" lesson). Derived, the same encrypted
//! key always gets the same content key, and which of the two it was is chosen by a mask, not a
//! branch, as far as safe Rust allows (the RSA library itself answers a bad padding by `Err`).

use aws_lc_rs::hmac;

/// The content key to decrypt with: the decrypted one when it is `key_len` bytes long, else
/// HMAC-SHA256(`secret`, `encrypted_key`) cut to `key_len` (at most 32 bytes, the longest
/// content key: AES-256). Both are computed every time.
pub fn content_key(
    decrypted: Option<&[u8]>,
    secret: &[u8; 32],
    encrypted_key: &[u8],
    key_len: usize,
) -> Vec<u8> {
    let key_len = key_len.min(32);
    let fallback = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), encrypted_key);
    let fallback = &fallback.as_ref()[..key_len];
    let decrypted = decrypted.unwrap_or_default();
    let good = u8::from(decrypted.len() == key_len);
    // 0xff when the decrypted key is used, 0x00 when the fallback is; black_box keeps the
    // compiler from turning the mask back into a branch.
    let mask = std::hint::black_box(0u8.wrapping_sub(good));
    (0..key_len)
        .map(|i| {
            let d = decrypted.get(i).copied().unwrap_or(0);
            (d & mask) | (fallback[i] & !mask)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same encrypted key that fails to decrypt gets the same content key each time;
    /// another encrypted key or another secret gets another; a key that decrypts is used.
    #[test]
    fn a_failed_key_gets_the_same_fallback_each_time() {
        let secret = [7; 32];
        let bad = [0xa5; 256];
        let first = content_key(None, &secret, &bad, 16);
        assert_eq!(first.len(), 16);
        assert_eq!(content_key(None, &secret, &bad, 16), first);
        let mut other = bad;
        other[255] ^= 1;
        assert_ne!(content_key(None, &secret, &other, 16), first);
        assert_ne!(content_key(None, &[8; 32], &bad, 16), first);
        // The fallback is the HMAC of the encrypted key, cut to the cipher's key length.
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), &bad);
        assert_eq!(content_key(None, &secret, &bad, 24), &tag.as_ref()[..24]);

        let real = [0x11; 16];
        assert_eq!(content_key(Some(&real), &secret, &bad, 16), real);
        // A key of the wrong length decrypted fine is no key for this cipher: the fallback.
        assert_eq!(content_key(Some(&real), &secret, &bad, 32).len(), 32);
        assert_eq!(
            content_key(Some(&real), &secret, &bad, 32),
            content_key(None, &secret, &bad, 32)
        );
    }
}
