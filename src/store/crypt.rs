//! `ENCRYPTION_KEY`: the stored key list encrypted at rest with AES-256-GCM
//! (`ring::aead`), key = SHA-256 of the setting, a random 96-bit nonce per
//! value. A sealed value reads `enc1:<hex nonce+ciphertext+tag>`; without
//! `ENCRYPTION_KEY` values are stored as they are (in clear).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::model::hex;

const PREFIX: &str = "enc1:";

/// Seals and opens stored key values.
pub struct Crypt {
    key: Option<LessSafeKey>,
    rng: SystemRandom,
}

impl Crypt {
    /// From `ENCRYPTION_KEY` (`None`: values pass through in clear).
    pub fn new(secret: Option<&str>) -> Result<Crypt, String> {
        let key = match secret {
            None => None,
            Some(s) => {
                let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
                let k = UnboundKey::new(&AES_256_GCM, d.as_ref())
                    .map_err(|_| "ENCRYPTION_KEY: cannot make an AES key".to_string())?;
                Some(LessSafeKey::new(k))
            }
        };
        Ok(Crypt {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Encrypt `plain` (or return it as it is without a key).
    pub fn seal(&self, plain: &str) -> Result<String, String> {
        let Some(key) = &self.key else {
            return Ok(plain.to_string());
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| "no randomness for a nonce".to_string())?;
        let mut buf = plain.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| "encryption failed".to_string())?;
        let mut all = nonce.to_vec();
        all.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", hex(&all)))
    }

    /// Decrypt a stored value (a clear one is returned as it is).
    pub fn open(&self, stored: &str) -> Result<String, String> {
        let Some(hexed) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let Some(key) = &self.key else {
            return Err("a stored key is encrypted but ENCRYPTION_KEY is not set".into());
        };
        let bytes = unhex(hexed).ok_or("a stored encrypted key is not hex")?;
        if bytes.len() < NONCE_LEN {
            return Err("a stored encrypted key is too short".into());
        }
        let (n, ct) = bytes.split_at(NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(n);
        let mut buf = ct.to_vec();
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| "a stored key does not decrypt: wrong ENCRYPTION_KEY?".to_string())?;
        String::from_utf8(plain.to_vec()).map_err(|_| "a decrypted key is not text".into())
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_random_nonce_wrong_key_refused() {
        let c = Crypt::new(Some("secret")).unwrap();
        let k = "AIzaSyA1234567890abcdefghijklmnopqrstu";
        let a = c.seal(k).unwrap();
        let b = c.seal(k).unwrap();
        assert!(a.starts_with("enc1:") && !a.contains("AIza"));
        assert_ne!(a, b, "a fresh nonce per value");
        assert_eq!(c.open(&a).unwrap(), k);
        assert!(Crypt::new(Some("other")).unwrap().open(&a).is_err());
        assert!(Crypt::new(None).unwrap().open(&a).is_err());
        let clear = Crypt::new(None).unwrap();
        assert_eq!(clear.seal(k).unwrap(), k);
        assert_eq!(
            c.open(k).unwrap(),
            k,
            "clear values written before the key was set still read"
        );
        let mut bad = a.clone();
        let last = bad.pop();
        bad.push(if last == Some('0') { '1' } else { '0' });
        assert!(c.open(&bad).is_err(), "a changed byte fails the tag");
    }
}
