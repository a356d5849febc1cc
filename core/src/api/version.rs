//! Function versions and MPREG's `version_constraint` syntax
//! (`catalog_query`, `rpc_list`, `rpc_describe`).
//!
//! MPREG's syntax is not semver's (in semver `1.2.3` means `^1.2.3`; in MPREG
//! it means exactly `1.2.3`), so it is implemented here rather than with the
//! `semver` crate:
//!
//! - a version is `v?N(.N(.N)?)?` (ASCII digits), missing parts are `0`:
//!   `1.2` is `1.2.0`, `v3` is `3.0.0`;
//! - a constraint is a comma-separated list of parts, each `OPversion` with
//!   `OP` one of `>=`, `<=`, `==`, `=`, `<`, `>`, or a bare version (exact);
//!   surrounding parentheses and the word `version` are ignored, so
//!   `(version >= 1.0, < 2.0)` is accepted as MPREG accepts it;
//! - an exact version cannot be combined with anything else; a later lower
//!   bound may only raise the earlier one and a later upper bound only lower
//!   it (as in MPREG);
//! - ours, not MPREG's: a range that no version can satisfy
//!   (`>=2.0.0,<1.0.0`) is an error rather than a silent empty result.
//!
//! Entry versions that are not valid versions match no constraint.

use std::fmt;

/// A `MAJOR.MINOR.PATCH` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl Version {
    /// Builds a version from its parts.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses `v?N(.N(.N)?)?` (surrounding whitespace ignored).
    pub fn parse(raw: &str) -> Result<Version, String> {
        let bad = || format!("Invalid semantic version: {raw}");
        let value = raw.trim();
        let value = value.strip_prefix('v').unwrap_or(value);
        let parts: Vec<&str> = value.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(bad());
        }
        let mut numbers = [0u64; 3];
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            *slot = part
                .parse::<u64>()
                .map_err(|_| format!("Invalid semantic version: {raw} (number too large)"))?;
        }
        Ok(Version::new(numbers[0], numbers[1], numbers[2]))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One end of a range: the version and whether it is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    version: Version,
    inclusive: bool,
}

/// A parsed `version_constraint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionConstraint {
    exact: Option<Version>,
    min: Option<Bound>,
    max: Option<Bound>,
}

impl VersionConstraint {
    /// The constraint every version satisfies.
    pub fn any() -> VersionConstraint {
        VersionConstraint::default()
    }

    /// Parses MPREG's constraint syntax (see the module docs). The error
    /// text names the offending input.
    pub fn parse(raw: &str) -> Result<VersionConstraint, String> {
        Self::parse_inner(raw).map_err(|why| format!("Invalid version_constraint {raw:?}: {why}"))
    }

    fn parse_inner(raw: &str) -> Result<VersionConstraint, String> {
        let spec = raw
            .trim()
            .trim_matches(|c| c == '(' || c == ')')
            .replace("version", "");
        let mut out = VersionConstraint::any();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (op, rest) = ["==", ">=", "<=", "=", ">", "<"]
                .iter()
                .find_map(|op| part.strip_prefix(op).map(|rest| (*op, rest)))
                .unwrap_or(("==", part));
            if rest.trim().is_empty() {
                return Err(format!("`{part}` has no version"));
            }
            let version = Version::parse(rest)?;
            match op {
                "==" | "=" => out.set_exact(version)?,
                ">=" => out.set_min(version, true)?,
                ">" => out.set_min(version, false)?,
                "<=" => out.set_max(version, true)?,
                _ => out.set_max(version, false)?,
            }
        }
        if let (Some(min), Some(max)) = (out.min, out.max) {
            let empty = min.version > max.version
                || (min.version == max.version && !(min.inclusive && max.inclusive));
            if empty {
                return Err("no version satisfies this range".into());
            }
        }
        Ok(out)
    }

    fn set_exact(&mut self, v: Version) -> Result<(), String> {
        if self.exact.is_some() || self.min.is_some() || self.max.is_some() {
            return Err("an exact version cannot be combined with another constraint".into());
        }
        self.exact = Some(v);
        Ok(())
    }

    fn set_min(&mut self, v: Version, inclusive: bool) -> Result<(), String> {
        if self.exact.is_some() {
            return Err("a lower bound cannot be combined with an exact version".into());
        }
        if self.min.is_some_and(|m| v < m.version) {
            return Err("a later lower bound may not lower an earlier one".into());
        }
        self.min = Some(Bound {
            version: v,
            inclusive,
        });
        Ok(())
    }

    fn set_max(&mut self, v: Version, inclusive: bool) -> Result<(), String> {
        if self.exact.is_some() {
            return Err("an upper bound cannot be combined with an exact version".into());
        }
        if self.max.is_some_and(|m| v > m.version) {
            return Err("a later upper bound may not raise an earlier one".into());
        }
        self.max = Some(Bound {
            version: v,
            inclusive,
        });
        Ok(())
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: Version) -> bool {
        if let Some(exact) = self.exact {
            return v == exact;
        }
        if let Some(min) = self.min {
            if v < min.version || (v == min.version && !min.inclusive) {
                return false;
            }
        }
        if let Some(max) = self.max {
            if v > max.version || (v == max.version && !max.inclusive) {
                return false;
            }
        }
        true
    }

    /// Whether the version string `raw` satisfies the constraint; a string
    /// that is not a version satisfies none.
    pub fn matches_str(&self, raw: &str) -> bool {
        Version::parse(raw).is_ok_and(|v| self.matches(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_parse_like_mpreg() {
        assert_eq!(v("1.2.3"), Version::new(1, 2, 3));
        assert_eq!(v("1.2"), Version::new(1, 2, 0));
        assert_eq!(v("v3"), Version::new(3, 0, 0));
        assert_eq!(v(" 10.0.1 "), Version::new(10, 0, 1));
        for bad in [
            "",
            "v",
            "1.",
            ".1",
            "1.2.3.4",
            "1.x",
            "-1",
            "1.2.3-beta",
            "99999999999999999999999",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
    }

    #[test]
    fn constraints_match() {
        let c = VersionConstraint::parse(">=1.0.0,<2.0.0").unwrap();
        assert!(c.matches(v("1.0.0")));
        assert!(c.matches(v("1.9.9")));
        assert!(!c.matches(v("2.0.0")));
        assert!(!c.matches(v("0.9.0")));
        let c = VersionConstraint::parse("==1.2").unwrap();
        assert!(c.matches(v("1.2.0")));
        assert!(!c.matches(v("1.2.1")));
        let c = VersionConstraint::parse("1.2.3").unwrap();
        assert!(c.matches(v("1.2.3")));
        assert!(!c.matches(v("1.2.4")));
        let c = VersionConstraint::parse("(version >1.0, <=1.5)").unwrap();
        assert!(!c.matches(v("1.0.0")));
        assert!(c.matches(v("1.5.0")));
        assert!(c.matches(v("1.0.1")));
        let c = VersionConstraint::parse("=2").unwrap();
        assert!(c.matches(v("2.0.0")));
        assert!(VersionConstraint::parse("").unwrap().matches(v("7.7.7")));
        assert!(VersionConstraint::parse(" , ").unwrap().matches(v("0.0.0")));
        // Raising a lower bound / lowering an upper bound is allowed.
        let c = VersionConstraint::parse(">=1.0,>=1.5,<3,<2").unwrap();
        assert!(!c.matches(v("1.4.0")));
        assert!(c.matches(v("1.5.0")));
        assert!(!c.matches(v("2.0.0")));
        assert!(c.matches_str("1.9"));
        assert!(!c.matches_str("beta"));
    }

    #[test]
    fn invalid_constraints_are_errors() {
        for bad in [
            ">=x",
            ">=",
            "1.2.3,2.0.0",
            "==1.0,>=1.0",
            ">=1.0,==1.0",
            ">=2.0,>=1.0",
            "<1.0,<2.0",
            ">=2.0.0,<1.0.0",
            ">1.0,<1.0",
            "~1.2",
            "^1.2",
            ">=1.0;<2.0",
        ] {
            let err = VersionConstraint::parse(bad).unwrap_err();
            assert!(err.contains("Invalid version_constraint"), "{bad}: {err}");
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert!(VersionConstraint::parse(">=1.0,<=1.0").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = VersionConstraint::parse(&s);
        }
    }
}
