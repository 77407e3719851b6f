//! Media upload (`oapi /media/upload`): multipart built here with an injected boundary; size
//! and extension limits checked before sending.

use serde::Deserialize;
use serde_json::Value;

use super::{ApiCall, Body, Family, RequestSpec, Target, from_value};
use crate::error::{ApiError, ErrorKind};

/// The `type` form field of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `image`: ≤ 20 MB; jpg, gif, png, bmp.
    Image,
    /// `voice`: ≤ 2 MB; amr, mp3, wav.
    Voice,
    /// `video`: ≤ 20 MB; mp4.
    Video,
    /// `file`: ≤ 20 MB; doc, docx, xls, xlsx, ppt, pptx, zip, pdf, rar.
    File,
}

const MB: usize = 1024 * 1024;

impl MediaType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Voice => "voice",
            Self::Video => "video",
            Self::File => "file",
        }
    }

    /// Largest accepted size in bytes.
    pub fn max_bytes(self) -> usize {
        match self {
            Self::Voice => 2 * MB,
            _ => 20 * MB,
        }
    }

    /// Accepted file extensions (lower case).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Image => &["jpg", "jpeg", "gif", "png", "bmp"],
            Self::Voice => &["amr", "mp3", "wav"],
            Self::Video => &["mp4"],
            Self::File => &[
                "doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip", "pdf", "rar",
            ],
        }
    }
}

/// The answer of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Uploaded {
    /// `media_id` (starts with `@`).
    pub media_id: String,
    /// `created_at` (unix ms).
    #[serde(default)]
    pub created_at: Option<i64>,
    /// `type`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// `POST {oapi}/media/upload?access_token=…` with parts `type` and `media`.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaUpload {
    /// The kind of media.
    pub kind: MediaType,
    /// File name sent with the `media` part (its extension is checked).
    pub file_name: String,
    /// `Content-Type` of the `media` part, e.g. `image/png`.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The multipart boundary (inject a random one: the core has no RNG).
    pub boundary: String,
}

impl std::fmt::Debug for MediaUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaUpload")
            .field("kind", &self.kind)
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// The `Content-Type` of a file by its extension (`application/octet-stream` when unknown).
pub fn content_type_for(file_name: &str) -> &'static str {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "mp3" => "audio/mpeg",
        "amr" => "audio/amr",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

impl MediaUpload {
    /// An upload of `bytes` named `file_name`, its content type from the extension and a
    /// boundary drawn from an RNG seeded with `seed` that does not occur in the bytes. Checks
    /// the size and extension limits of `kind` now, before anything is sent.
    pub fn new(
        kind: MediaType,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
        seed: u64,
    ) -> Result<Self, ApiError> {
        let file_name = file_name.into();
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut upload = Self {
            kind,
            content_type: content_type_for(&file_name).to_owned(),
            file_name,
            bytes,
            boundary: String::new(),
        };
        for _ in 0..8 {
            upload.boundary = format!("dingtalk-rs-{:016x}{:016x}", rng.u64(..), rng.u64(..));
            if !upload.boundary_in_file() {
                upload.validate()?;
                return Ok(upload);
            }
        }
        Err(ApiError::validation("no multipart boundary fits this file"))
    }

    /// Whether `--boundary` occurs in the bytes (it would cut the file short).
    fn boundary_in_file(&self) -> bool {
        let marker = format!("--{}", self.boundary);
        self.bytes
            .windows(marker.len())
            .any(|w| w == marker.as_bytes())
    }

    fn validate(&self) -> Result<(), ApiError> {
        if self.bytes.is_empty() {
            return Err(ApiError::validation("the file is empty"));
        }
        if self.bytes.len() > self.kind.max_bytes() {
            return Err(ApiError::new(
                ErrorKind::TooLarge,
                format!(
                    "{} of {} bytes exceeds the {} limit of {} bytes",
                    self.file_name,
                    self.bytes.len(),
                    self.kind.as_str(),
                    self.kind.max_bytes()
                ),
            ));
        }
        let ext = self
            .file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        if !self.kind.extensions().contains(&ext.as_str()) {
            return Err(ApiError::new(
                ErrorKind::InvalidFile,
                format!(
                    "`.{ext}` is not accepted for {} (accepted: {})",
                    self.kind.as_str(),
                    self.kind.extensions().join(", ")
                ),
            ));
        }
        let bad = |s: &str| s.contains(['"', '\r', '\n']);
        if bad(&self.file_name) || bad(&self.content_type) {
            return Err(ApiError::validation(
                "file name and content type may not contain quotes or line breaks",
            ));
        }
        if self.boundary.is_empty()
            || self.boundary.len() > 70
            || !self
                .boundary
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&b))
        {
            return Err(ApiError::validation("invalid multipart boundary"));
        }
        if self.boundary_in_file() {
            return Err(ApiError::validation(
                "the boundary occurs in the file; pick another",
            ));
        }
        Ok(())
    }

    /// The multipart body.
    pub fn multipart(&self) -> Vec<u8> {
        let b = &self.boundary;
        let mut out = Vec::with_capacity(self.bytes.len() + 256);
        out.extend_from_slice(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{}\r\n",
                self.kind.as_str()
            )
            .as_bytes(),
        );
        out.extend_from_slice(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                self.file_name, self.content_type
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        out
    }
}

impl ApiCall for MediaUpload {
    type Output = Uploaded;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        self.validate()?;
        Ok(RequestSpec {
            method: http::Method::POST,
            target: Target::Oapi("/media/upload".into()),
            // Also in the query: some clients get 40004 without it (reference §6.1).
            query: vec![("type".into(), self.kind.as_str().into())],
            body: Body::Raw {
                content_type: format!("multipart/form-data; boundary={}", self.boundary),
                bytes: self.multipart(),
            },
            needs_token: true,
        })
    }
    fn family(&self) -> Family {
        Family::Oapi
    }
    fn parse(&self, body: Value) -> Result<Uploaded, ApiError> {
        from_value(body)
    }
}
