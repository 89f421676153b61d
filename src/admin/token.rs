//! The administrator's bearer token: made on first start into `<data_dir>/admin.token` (0600),
//! so the CLI on the box works with no set-up and nothing else can read it.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty or not text: delete it to have a new token made")]
    Invalid { path: std::path::PathBuf },
}

/// The token a token file holds: ASCII text, not empty once trimmed. A restore checks a
/// backup's token with this too, so that it never puts back a file the daemon would refuse.
pub fn parse(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.is_ascii())
}

/// The administrator's token, and whether this start made it: the first start says where it
/// is (`start_notes::first_start`).
pub struct AdminToken {
    pub token: String,
    pub created: bool,
}

pub fn load_or_create(path: &Path) -> Result<AdminToken, TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes)
            .map(|token| AdminToken {
                token,
                created: false,
            })
            .ok_or_else(|| TokenError::Invalid {
                path: path.to_path_buf(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 32] = crate::pki::random_bytes();
            let token = format!("ep_{}", crate::phone::credentials::hex(&bytes));
            crate::fsutil::write_atomic(path, format!("{token}\n").as_bytes(), 0o600)
                .map_err(io)?;
            Ok(AdminToken {
                token,
                created: true,
            })
        }
        Err(e) => Err(io(e)),
    }
}

/// Compares without an early exit, so response timing does not reveal a token's prefix.
pub fn matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let first = load_or_create(&path).unwrap();
        let again = load_or_create(&path).unwrap();
        assert!(first.created && !again.created);
        let (a, b) = (first.token, again.token);
        assert_eq!(a, b);
        assert!(a.starts_with("ep_") && a.len() == 67);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches(&a, &b));
        assert!(!matches(&a, "ep_x"));
    }
}
