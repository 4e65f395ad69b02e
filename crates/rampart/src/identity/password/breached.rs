//! The operator's list of breached passwords (NIST SP 800-63B 5.1.1.2: refuse values known from
//! previous breaches; ASVS 4.0 2.1.7). Kept as SHA-1 digests so both plain lists and the Have I
//! Been Pwned download (`HEX` or `HEX:count` per line) load into the same set.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use sha1::{Digest, Sha1};

use super::normalise;

/// SHA-1 digests of breached passwords; empty when the operator supplies no file.
#[derive(Debug, Default, Clone)]
pub struct BreachedList {
    digests: HashSet<[u8; 20]>,
}

impl BreachedList {
    /// A list that contains nothing (no file configured).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads a file with one entry a line: a 40-hex-digit SHA-1 of the password, optionally
    /// followed by `:count` (HIBP format), or else the password itself. Blank lines are skipped,
    /// and so are lines that are not UTF-8: no password typed into the server could match them.
    /// Large lists cost about 60 bytes of memory an entry; operators should load a top-N subset.
    pub fn load(path: impl AsRef<Path>) -> io::Result<Self> {
        let mut reader = BufReader::new(File::open(path.as_ref())?);
        let mut digests = HashSet::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let Ok(text) = std::str::from_utf8(&line) else {
                continue;
            };
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            digests.insert(hibp_digest(text.trim()).unwrap_or_else(|| digest_of(text)));
        }
        Ok(Self { digests })
    }

    /// Whether the password, once NFKC-normalised, is on the list.
    pub fn contains(&self, password: &str) -> bool {
        !self.digests.is_empty() && self.digests.contains(&digest_of(&normalise(password)))
    }

    /// How many entries were loaded.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no entries were loaded.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

/// SHA-1 of a normalised password, the form HIBP publishes.
fn digest_of(password: &str) -> [u8; 20] {
    Sha1::digest(password.as_bytes()).into()
}

/// The digest of a `HEX` or `HEX:count` line, or `None` when the line is a plain password.
fn hibp_digest(line: &str) -> Option<[u8; 20]> {
    let hex = match line.split_once(':') {
        Some((hex, count)) if count.bytes().all(|b| b.is_ascii_digit()) => hex,
        Some(_) => return None,
        None => line,
    };
    let bytes = hex.as_bytes();
    if bytes.len() != 40 {
        return None;
    }
    let mut digest = [0u8; 20];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *out = u8::try_from(high * 16 + low).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(contents: &str) -> BreachedList {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("breached.txt");
        std::fs::write(&path, contents).unwrap();
        BreachedList::load(&path).unwrap()
    }

    #[test]
    fn plain_lines_and_hibp_hashes_both_match() {
        // SHA-1("password") and SHA-1("letmein"), upper and lower case, with and without a count.
        let list = load(
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3861493\n\
             b7a875fc1ea228b9061041b7cec4bd3c52ab3ce3\n\
             winter is coming 2024\r\n\
             \n",
        );
        assert_eq!(list.len(), 3);
        assert!(list.contains("password"));
        assert!(list.contains("letmein"));
        assert!(list.contains("winter is coming 2024"));
        assert!(!list.contains("winter is coming 2025"));
    }

    #[test]
    fn the_candidate_is_normalised_before_lookup() {
        let list = load("winter is coming 2024\n");
        assert!(list.contains("ｗｉｎｔｅｒ is coming 2024"));
    }

    #[test]
    fn lines_that_are_not_utf8_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("breached.txt");
        std::fs::write(&path, b"caf\xe9 au lait\nletmein\n").unwrap();
        let list = BreachedList::load(&path).unwrap();
        assert_eq!(list.len(), 1);
        assert!(list.contains("letmein"));
    }

    #[test]
    fn the_empty_list_contains_nothing_and_a_missing_file_is_an_error() {
        assert!(!BreachedList::empty().contains("password"));
        assert!(BreachedList::empty().is_empty());
        assert!(BreachedList::load("/nonexistent/breached.txt").is_err());
    }
}
