//! HTTP-callback security: the outgoing-robot signature check and the event-subscription crypto.
//!
//! ```
//! use dingtalk_core::callback::EventCrypto;
//! // The official FAQ vector.
//! let crypto = EventCrypto::new("123456", "1234567890123456789012345678901234567890123", "dingsnotzck6pm5veliw").unwrap();
//! let plain = crypto.decrypt(
//!     "9a95a004dd16f5c307e849b994173f76aa26e5eb", "1614767836", "A7Co0cJLMzIDtMMI",
//!     "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==",
//! ).unwrap();
//! assert_eq!(plain, "success");
//! ```

use std::fmt;

use aes::Aes256;
use base64::Engine;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use serde::Serialize;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::model::ChatbotMessage;
use crate::webhook::hmac_sha256_base64;

/// Why a callback was refused. Codes follow the official crypto class (900001–900010) where one
/// applies.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The `timestamp` header is missing or not a number.
    #[error("missing or invalid timestamp")]
    InvalidTimestamp,
    /// The timestamp is more than an hour away from now.
    #[error("timestamp outside the one-hour window")]
    Expired,
    /// The signature does not match (900005).
    #[error("signature mismatch")]
    SignatureMismatch,
    /// The EncodingAESKey is not 43 valid characters (900004).
    #[error("invalid EncodingAESKey")]
    InvalidAesKey,
    /// The ciphertext is not valid Base64 or not whole AES blocks (900008).
    #[error("ciphertext cannot be decrypted")]
    DecryptFailed,
    /// The length field does not match the plaintext (900009).
    #[error("decrypted length mismatch")]
    LengthMismatch,
    /// The trailing owner key is not ours (900010).
    #[error("owner key mismatch")]
    OwnerKeyMismatch,
    /// The decrypted message is not UTF-8.
    #[error("decrypted message is not UTF-8")]
    NotUtf8,
    /// The body is not the expected JSON.
    #[error("invalid body: {0}")]
    InvalidBody(String),
}

impl CallbackError {
    /// The official error code (900001–900010), where one applies.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::InvalidAesKey => Some(900_004),
            Self::SignatureMismatch => Some(900_005),
            Self::DecryptFailed | Self::NotUtf8 => Some(900_008),
            Self::LengthMismatch => Some(900_009),
            Self::OwnerKeyMismatch => Some(900_010),
            _ => None,
        }
    }
}

/// The one-hour window of the outgoing-robot signature.
pub const SIGNATURE_WINDOW_MS: i64 = 3_600_000;

/// Verifies the `timestamp` and `sign` headers of an outgoing-robot callback:
/// `sign == Base64(HMAC-SHA256(appSecret, timestamp + "\n" + appSecret))`, compared in constant
/// time, and `|now − timestamp| ≤ 1 h`.
pub fn verify_outgoing(
    timestamp: &str,
    sign: &str,
    app_secret: &str,
    now_ms: i64,
) -> Result<(), CallbackError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| CallbackError::InvalidTimestamp)?;
    if now_ms.abs_diff(ts) > SIGNATURE_WINDOW_MS.unsigned_abs() {
        return Err(CallbackError::Expired);
    }
    let expected = hmac_sha256_base64(
        app_secret.as_bytes(),
        format!("{timestamp}\n{app_secret}").as_bytes(),
    );
    if bool::from(expected.as_bytes().ct_eq(sign.trim().as_bytes())) {
        Ok(())
    } else {
        Err(CallbackError::SignatureMismatch)
    }
}

/// Verifies an outgoing-robot callback and parses its body into the same model as Stream.
pub fn parse_outgoing(
    timestamp: &str,
    sign: &str,
    app_secret: &str,
    now_ms: i64,
    body: &[u8],
) -> Result<ChatbotMessage, CallbackError> {
    verify_outgoing(timestamp, sign, app_secret, now_ms)?;
    serde_json::from_slice(body).map_err(|e| CallbackError::InvalidBody(e.to_string()))
}

/// `hex(SHA1(concat(sort([token, timestamp, nonce, encrypt]))))`.
pub fn event_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const BLOCK: usize = 32;

/// The event-subscription crypto (DingCallbackCrypto): AES-256-CBC, IV = first 16 key bytes,
/// 32-byte PKCS#7 blocks, `random16 ‖ u32be len ‖ msg ‖ ownerKey`, SHA-1 signature.
#[derive(Clone)]
pub struct EventCrypto {
    token: String,
    key: [u8; 32],
    owner_key: String,
}

impl fmt::Debug for EventCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventCrypto")
            .field("token", &"<redacted>")
            .field("key", &"<redacted>")
            .field("owner_key", &self.owner_key)
            .finish()
    }
}

/// The encrypted reply DingTalk expects: `{"msg_signature","timeStamp","nonce","encrypt"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncryptedReply {
    /// `msg_signature`.
    pub msg_signature: String,
    /// `timeStamp`.
    #[serde(rename = "timeStamp")]
    pub timestamp: String,
    /// `nonce`.
    pub nonce: String,
    /// `encrypt`: Base64 ciphertext.
    pub encrypt: String,
}

impl EventCrypto {
    /// `token` (3–32 chars), the 43-char `EncodingAESKey`, and the owner key (the AppKey for
    /// console subscriptions, the CorpId for `register_call_back`, the SuiteKey for ISVs).
    pub fn new(
        token: impl Into<String>,
        encoding_aes_key: &str,
        owner_key: impl Into<String>,
    ) -> Result<Self, CallbackError> {
        if encoding_aes_key.len() != 43 {
            return Err(CallbackError::InvalidAesKey);
        }
        // Like the official decoders, accept non-zero trailing bits in the 43rd character.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let decoded = lenient
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CallbackError::InvalidAesKey)?;
        let key: [u8; 32] = decoded
            .try_into()
            .map_err(|_| CallbackError::InvalidAesKey)?;
        Ok(Self {
            token: token.into(),
            key,
            owner_key: owner_key.into(),
        })
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// Checks the signature, decrypts, and checks the length and owner key.
    pub fn decrypt(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CallbackError> {
        let expected = event_signature(&self.token, timestamp, nonce, encrypt);
        if !bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes())) {
            return Err(CallbackError::SignatureMismatch);
        }
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CallbackError::DecryptFailed)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CallbackError::DecryptFailed);
        }
        let plain = cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CallbackError::DecryptFailed)?;
        // 32-byte PKCS#7: strip 1..=32 bytes; other values are left as they are (as the
        // official decryptors do), and the length field decides what the message is.
        let pad = usize::from(*plain.last().ok_or(CallbackError::DecryptFailed)?);
        let unpadded = if (1..=BLOCK).contains(&pad) && pad <= plain.len() {
            &plain[..plain.len() - pad]
        } else {
            plain
        };
        if unpadded.len() < 20 {
            return Err(CallbackError::LengthMismatch);
        }
        let len_bytes: [u8; 4] = unpadded[16..20]
            .try_into()
            .map_err(|_| CallbackError::LengthMismatch)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let rest = &unpadded[20..];
        if len > rest.len() {
            return Err(CallbackError::LengthMismatch);
        }
        let (msg, owner) = rest.split_at(len);
        if owner != self.owner_key.as_bytes() {
            return Err(CallbackError::OwnerKeyMismatch);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CallbackError::NotUtf8)
    }

    /// Encrypts `msg` (normally `success`) into the reply shape. `random16` is the random prefix
    /// (inject it: the core has no RNG).
    pub fn encrypt(
        &self,
        msg: &str,
        timestamp: &str,
        nonce: &str,
        random16: [u8; 16],
    ) -> EncryptedReply {
        let mut plain = Vec::with_capacity(20 + msg.len() + self.owner_key.len() + BLOCK);
        plain.extend_from_slice(&random16);
        plain.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        plain.extend_from_slice(msg.as_bytes());
        plain.extend_from_slice(self.owner_key.as_bytes());
        let pad = BLOCK - plain.len() % BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let encrypt = base64::engine::general_purpose::STANDARD.encode(self.cbc_encrypt(plain));
        EncryptedReply {
            msg_signature: event_signature(&self.token, timestamp, nonce, &encrypt),
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            encrypt,
        }
    }

    /// AES-256-CBC over already padded input (a whole number of blocks).
    fn cbc_encrypt(&self, mut padded: Vec<u8>) -> Vec<u8> {
        let len = padded.len();
        cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut padded, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// Parses the callback body `{"encrypt": "…"}` and decrypts it.
    pub fn decrypt_body(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Result<String, CallbackError> {
        #[derive(serde::Deserialize)]
        struct Encrypted {
            encrypt: String,
        }
        let b: Encrypted =
            serde_json::from_slice(body).map_err(|e| CallbackError::InvalidBody(e.to_string()))?;
        self.decrypt(signature, timestamp, nonce, &b.encrypt)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may abort on failure
    use super::*;

    /// V7: the raw AES-CBC block of the official Rust sample (key of V2).
    #[test]
    fn raw_cbc_block_vector() {
        let c =
            EventCrypto::new("123456", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", "x").unwrap();
        let mut plain = b"5p7b4jXMWUshiBCosucc111esssuite4xxxxxxxxxxxxxxx221".to_vec();
        plain.extend(std::iter::repeat_n(0x0e, 14));
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(c.cbc_encrypt(plain)),
            "DwCJ9BMxu4r+VTe9TD+AWc1yfxqs7d2YgepFe4XruMgh1+6pTjCCq4nqAM6StRcafOx5a1OfwmX3ckSBifatlA=="
        );
    }

    /// The login-free signature vector exercises the HMAC → Base64 primitive.
    #[test]
    fn hmac_primitive_vector() {
        let sign = hmac_sha256_base64(b"testappSecret", b"1546084445901");
        let encoded: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
        assert_eq!(encoded, "HCbG3xNE3vzhO%2Bu7qCUL1jS5hsu2n5r2cFhnTrtyDAE%3D");
    }
}
