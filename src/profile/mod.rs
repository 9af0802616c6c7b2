//! Disposal profiles: how each local file is destroyed (passes, which passes
//! are verified by read-back, renames before unlink, block size, re-hash
//! before overwrite). Built-in profiles are the TOML files under `profiles/`,
//! compiled into the binary; a profile may also be given by path.
//!
//! A profile is resolved once, at trace time, and copied into the plan, so
//! the custodian signs exactly the method that execute will use.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Built-in profiles: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("nist-clear", include_str!("../../profiles/nist-clear.toml")),
    ("dod-3pass", include_str!("../../profiles/dod-3pass.toml")),
    (
        "delete-only",
        include_str!("../../profiles/delete-only.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Overwrite passes, in order, each over the whole file.
    pub passes: Vec<Pass>,
    /// Which passes are read back from the device and compared.
    #[serde(default = "Verify::default_last")]
    pub verify: Verify,
    /// Renames to random names before unlink (hides the original name).
    #[serde(default)]
    pub renames: u32,
    /// Write and read block size, in KiB.
    #[serde(default = "default_block")]
    pub block_size_kib: u32,
    /// Re-hash the file before overwriting and compare with the plan.
    #[serde(default)]
    pub rehash: bool,
}

fn default_block() -> u32 {
    4096
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Read back and compare every pass.
    All,
    /// Read back and compare the last pass only.
    Last,
    /// No read-back (only `delete-only` style profiles).
    None,
}

impl Verify {
    fn default_last() -> Self {
        Verify::Last
    }
}

/// One overwrite pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Zero,
    One,
    Random,
    Byte(u8),
}

impl Pass {
    /// The fill byte for pattern passes; `None` for random.
    pub fn fill(self) -> Option<u8> {
        match self {
            Pass::Zero => Some(0),
            Pass::One => Some(0xFF),
            Pass::Byte(b) => Some(b),
            Pass::Random => None,
        }
    }
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pass::Zero => f.write_str("zero"),
            Pass::One => f.write_str("one"),
            Pass::Random => f.write_str("random"),
            Pass::Byte(b) => write!(f, "byte:0x{b:02x}"),
        }
    }
}

impl std::str::FromStr for Pass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zero" => Ok(Pass::Zero),
            "one" => Ok(Pass::One),
            "random" => Ok(Pass::Random),
            _ => {
                let hex = s
                    .strip_prefix("byte:0x")
                    .or_else(|| s.strip_prefix("byte:0X"))
                    .ok_or_else(|| {
                        format!("unknown pass {s:?} (expected zero, one, random or byte:0xNN)")
                    })?;
                if hex.len() != 2 {
                    return Err(format!("pass {s:?}: expected two hex digits after byte:0x"));
                }
                u8::from_str_radix(hex, 16)
                    .map(Pass::Byte)
                    .map_err(|_| format!("pass {s:?}: {hex:?} is not a hex byte"))
            }
        }
    }
}

impl Serialize for Pass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pass {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Profile {
    /// Parse a profile from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let p: Profile = toml::from_str(text).map_err(|e| {
            Error::input(format!(
                "profile {origin}: {}",
                crate::util::one_line(&e.to_string())
            ))
        })?;
        p.validate(origin)?;
        Ok(p)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |m: String| Err(Error::input(format!("profile {origin}: {m}")));
        if self.name.trim().is_empty() {
            return bad("name must not be empty".into());
        }
        if self.passes.len() > 35 {
            return bad(format!(
                "{} passes is more than the 35 allowed",
                self.passes.len()
            ));
        }
        if !(4..=65536).contains(&self.block_size_kib) || !self.block_size_kib.is_power_of_two() {
            return bad(format!(
                "block_size_kib = {} must be a power of two between 4 and 65536",
                self.block_size_kib
            ));
        }
        if self.renames > 16 {
            return bad(format!(
                "renames = {} is more than the 16 allowed",
                self.renames
            ));
        }
        if self.passes.is_empty() && self.verify != Verify::None {
            return bad("verify must be \"none\" when there are no passes".into());
        }
        Ok(())
    }

    /// Resolve a profile reference: a built-in name, or a path to a TOML file
    /// (relative paths against `base`).
    pub fn resolve(reference: &str, base: &Path) -> Result<Self> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == reference) {
            return Self::from_toml(text, reference);
        }
        let looks_like_path = reference.contains('/') || reference.ends_with(".toml");
        if !looks_like_path {
            let names: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
            return Err(Error::input(format!(
                "unknown profile {reference:?}; built-in profiles are {}, or give a path to a .toml file",
                names.join(", ")
            )));
        }
        let path = base.join(reference);
        let text = crate::util::read_text(&path, "profile", 1 << 20)?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Is pass `i` (0-based) read back and verified?
    pub fn verifies(&self, i: usize) -> bool {
        match self.verify {
            Verify::All => true,
            Verify::Last => i + 1 == self.passes.len(),
            Verify::None => false,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size_kib as usize * 1024
    }

    /// A one-line description of the method, for people.
    pub fn method_summary(&self) -> String {
        if self.passes.is_empty() {
            return "unlink, absence proof".into();
        }
        let passes: Vec<String> = self.passes.iter().map(|p| p.to_string()).collect();
        let verify = match self.verify {
            Verify::All => "every pass read back",
            Verify::Last => "last pass read back",
            Verify::None => "no read-back",
        };
        format!(
            "overwrite [{}], {verify}, {} rename(s), unlink",
            passes.join(", "),
            self.renames
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for (name, text) in BUILTIN {
            let p = Profile::from_toml(text, name).unwrap();
            assert_eq!(&p.name, name);
        }
        let dod = Profile::resolve("dod-3pass", Path::new(".")).unwrap();
        assert_eq!(dod.passes, vec![Pass::Zero, Pass::One, Pass::Random]);
        assert!(!dod.verifies(0) && !dod.verifies(1) && dod.verifies(2));
    }

    #[test]
    fn pass_round_trip() {
        for s in ["zero", "one", "random", "byte:0xa5"] {
            assert_eq!(s.parse::<Pass>().unwrap().to_string(), s);
        }
        assert!("byte:0x1".parse::<Pass>().is_err());
        assert!("twice".parse::<Pass>().is_err());
    }

    #[test]
    fn bad_profiles_are_refused() {
        let cases = [
            "name = \"x\"\npasses = [\"zero\"]\nbogus = 1",
            "name = \"x\"\npasses = [\"zero\"]\nblock_size_kib = 3",
            "name = \"x\"\npasses = []\nverify = \"last\"",
            "name = \"x\"\npasses = [\"purple\"]",
        ];
        for c in cases {
            assert!(Profile::from_toml(c, "t").is_err(), "{c}");
        }
        assert!(Profile::resolve("no-such", Path::new(".")).is_err());
    }
}
