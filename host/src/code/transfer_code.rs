//! The code a sender shows and a receiver types: `NAMEPLATE-word-word[-word…]`.

use std::fmt;

use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;

/// Words in a generated code: two PGP words carry 16 bits, which with one guess per try (the PAKE
/// allows no offline attack) gives an attacker a 1 in 65,536 chance per attempt.
pub const DEFAULT_WORDS: usize = 2;
/// The most words a code may have.
pub const MAX_WORDS: usize = 16;

/// A parsed transfer code.
#[derive(Clone, PartialEq, Eq)]
pub struct TransferCode {
    nameplate: u32,
    /// The secret: one byte per word of the PGP word list.
    secret: Vec<u8>,
}

/// Why a string is not a transfer code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// No nameplate number before the first `-`.
    #[error("a code starts with a number, like 7-guitar-orbit; {0:?} does not")]
    NoNameplate(String),
    /// Fewer than one or more than [`MAX_WORDS`] words.
    #[error("a code has 1 to {MAX_WORDS} words after the number; this one has {0}")]
    WordCount(usize),
    /// A word that is not in the PGP word list, or in the wrong position (the list alternates two
    /// halves, which catches swapped words).
    #[error(
        "{0:?} is not the word expected at position {1} of the code; check the spelling and order"
    )]
    BadWord(String, usize),
    /// Asked to make a code with an unusable word count.
    #[error("a code needs 1 to {MAX_WORDS} words, not {0}")]
    BadLength(usize),
}

impl TransferCode {
    /// A fresh code for `nameplate` with `words` random words.
    pub fn generate(nameplate: u32, words: usize) -> Result<Self, CodeError> {
        if words == 0 || words > MAX_WORDS {
            return Err(CodeError::BadLength(words));
        }
        let mut bytes = vec![0u8; words];
        OsRng.fill_bytes(&mut bytes);
        Ok(Self {
            nameplate,
            secret: bytes,
        })
    }

    /// Reads a code as a person typed it: case and surrounding spaces do not matter, and spaces may
    /// stand for dashes.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let normal = text.trim().to_lowercase().replace(' ', "-");
        let mut parts = normal.split('-').filter(|p| !p.is_empty());
        let nameplate = parts
            .next()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| CodeError::NoNameplate(text.to_owned()))?;
        let typed: Vec<&str> = parts.collect();
        if typed.is_empty() || typed.len() > MAX_WORDS {
            return Err(CodeError::WordCount(typed.len()));
        }
        let secret = pgp_words::to_bytes(&typed).ok_or_else(|| first_bad_word(&typed))?;
        Ok(Self { nameplate, secret })
    }

    /// The room on the signaling server.
    pub fn nameplate(&self) -> u32 {
        self.nameplate
    }

    /// How many words follow the nameplate (one byte of secret each).
    pub fn words(&self) -> usize {
        self.secret.len()
    }

    /// The secret part, as fed to the PAKE (bound to the nameplate).
    pub(crate) fn password(&self) -> String {
        format!(
            "p2phost-v1/{}/{}",
            self.nameplate,
            pgp_words::to_words(&self.secret).join("-")
        )
    }
}

fn first_bad_word(typed: &[&str]) -> CodeError {
    for (i, word) in typed.iter().enumerate() {
        // Check each word alone at its position, so the error names the one that is wrong.
        let zeros = vec![0u8; i + 1];
        let mut probe: Vec<&str> = pgp_words::to_words(&zeros);
        probe[i] = word;
        if pgp_words::to_bytes(&probe).is_none() {
            return CodeError::BadWord((*word).to_owned(), i + 1);
        }
    }
    CodeError::WordCount(typed.len())
}

impl fmt::Display for TransferCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.nameplate)?;
        for word in pgp_words::to_words(&self.secret) {
            write!(f, "-{word}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TransferCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The words are a secret: keep them out of logs.
        write!(f, "TransferCode({}-…)", self.nameplate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back() {
        for words in 1..=4 {
            let code = TransferCode::generate(7, words).unwrap_or_else(|e| panic!("{e}"));
            let text = code.to_string();
            assert!(text.starts_with("7-"), "{text}");
            assert_eq!(text.split('-').count(), words + 1, "{text}");
            assert_eq!(TransferCode::parse(&text), Ok(code));
        }
    }

    #[test]
    fn reads_codes_as_people_type_them() {
        let code = TransferCode::parse("7-aardvark-adroitness").unwrap_or_else(|e| panic!("{e}"));
        for typed in [
            "  7-Aardvark-ADROITNESS ",
            "7 aardvark adroitness",
            "7--aardvark-adroitness",
        ] {
            assert_eq!(TransferCode::parse(typed).as_ref(), Ok(&code), "{typed}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_code() {
        assert!(matches!(
            TransferCode::parse("guitar-orbit"),
            Err(CodeError::NoNameplate(_))
        ));
        assert!(matches!(
            TransferCode::parse("0-aardvark"),
            Err(CodeError::NoNameplate(_))
        ));
        assert_eq!(TransferCode::parse("7"), Err(CodeError::WordCount(0)));
        assert_eq!(
            TransferCode::parse("7-aardvark-nonsense"),
            Err(CodeError::BadWord("nonsense".into(), 2))
        );
        // Swapped words: each is in the list, but in the wrong half for its position.
        assert_eq!(
            TransferCode::parse("7-adroitness-aardvark"),
            Err(CodeError::BadWord("adroitness".into(), 1))
        );
        assert_eq!(TransferCode::generate(1, 0), Err(CodeError::BadLength(0)));
    }

    #[test]
    fn debug_output_hides_the_words() {
        let code = TransferCode::parse("7-aardvark-adroitness").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{code:?}"), "TransferCode(7-…)");
    }
}
