//! FUNCTION libraries as Redis 7 has them: a library is code whose first line names its
//! engine and itself (`#!lua name=mylib`) and whose body registers functions with
//! `redis.register_function` (run by a Lua state: `Vm::load_library`). This module is the
//! pure part: the shebang as Redis reads it (`functionExtractLibMetaData` with
//! `sdssplitargs`), the names Redis accepts, the script flags, and a node's registry of
//! libraries and their functions with Redis's collision rules and error texts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

/// The script flags in Redis's order (`scripts_flags_def`): FUNCTION LIST shows them so.
pub const FLAGS: [&str; 5] = ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

/// A set of [`FLAGS`], bit `i` for `FLAGS[i]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const NO_WRITES: Flags = Flags(1);
    pub const NO_CLUSTER: Flags = Flags(1 << 3);

    /// The flag named `name` (case-insensitive, as Redis compares them).
    pub fn named(name: &[u8]) -> Option<Flags> {
        FLAGS.iter().position(|f| f.as_bytes().eq_ignore_ascii_case(name)).map(|i| Flags(1 << i))
    }

    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub fn has(self, flag: Flags) -> bool {
        self.0 & flag.0 == flag.0
    }

    /// The names of the flags set, in Redis's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        FLAGS.iter().enumerate().filter(move |(i, _)| self.0 & (1 << i) != 0).map(|(_, f)| *f)
    }
}

/// One registered function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Bytes>,
    pub flags: Flags,
}

/// A library: its name, its whole code (shebang included, as FUNCTION LIST WITHCODE and DUMP
/// give it back) and its functions in the order it registered them.
#[derive(Debug)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    /// SHA1 of the code: a Lua state keeps the libraries it loaded by it.
    pub sha: String,
    /// Where the body starts: at the newline ending the shebang, so that the body's first line
    /// is line 2 (`user_function:2`), as in Redis.
    pub body_start: usize,
    pub functions: Vec<FunctionInfo>,
}

impl Library {
    pub fn body(&self) -> &[u8] {
        &self.code[self.body_start..]
    }
}

/// What a library's shebang says.
#[derive(Debug, PartialEq, Eq)]
pub struct Meta {
    pub engine: String,
    pub name: String,
    /// Where the body starts (the shebang's newline).
    pub body_start: usize,
}

/// Reads a library's shebang as Redis 7.0 does; the error texts are Redis's (without `ERR`).
///
/// # Errors
/// No shebang, no newline after it, arguments that do not split, another argument than
/// `name=`, a second `name=` or none.
pub fn parse_meta(code: &[u8]) -> Result<Meta, String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    // `strchr` on a C string: a NUL byte before the newline ends the search.
    let end = match code.iter().position(|&b| b == b'\n' || b == 0) {
        Some(i) if code[i] == b'\n' => i,
        _ => return Err("Invalid library metadata".into()),
    };
    let parts = match split_args(&code[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = String::from_utf8_lossy(parts[0].get(2..).unwrap_or_default()).into_owned();
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err("Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            continue;
        }
        return Err(format!("Invalid metadata value given: {}", String::from_utf8_lossy(part)));
    }
    let name = name.ok_or_else(|| "Library name was not given".to_owned())?;
    Ok(Meta { engine, name, body_start: end })
}

/// Redis's `functionsVerifyName`: letters, digits and underscores, at least one.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The text Redis answers for a library or function name it refuses.
pub const BAD_NAME: &str =
    "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Redis's `sdssplitargs`: words separated by spaces, double quotes with C escapes (`\n`,
/// `\xff` ...), single quotes with `\'`; `None` for unbalanced quotes or a closing quote
/// not followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let is_space = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c);
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() || line[p] == 0 {
            return Some(out);
        }
        let (mut inq, mut insq, mut done) = (false, false, false);
        let mut current = Vec::new();
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\' && at(p + 1) == b'x' && at(p + 2).is_ascii_hexdigit() && at(p + 3).is_ascii_hexdigit() {
                    let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                    current.push(hex(at(p + 2)) * 16 + hex(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && p + 1 < line.len() && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if p + 1 < line.len() && at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if p + 1 < line.len() && at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    other => current.push(other),
                }
            }
            if p < line.len() {
                p += 1;
            }
        }
        out.push(current);
    }
}

/// A node's view of the cluster's libraries: by name, and their functions by name (function
/// names are case-insensitive, as in Redis; library names are not).
#[derive(Debug, Default)]
pub struct Registry {
    libraries: BTreeMap<String, Arc<Library>>,
    functions: HashMap<String, (Arc<Library>, usize)>,
}

impl Registry {
    /// The function named `name` (any case) and its library.
    pub fn function(&self, name: &[u8]) -> Option<(Arc<Library>, &FunctionInfo)> {
        let key = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.functions.get(&key).map(|(lib, i)| (lib.clone(), &lib.functions[*i]))
    }

    pub fn library(&self, name: &str) -> Option<&Arc<Library>> {
        self.libraries.get(name)
    }

    /// The libraries by name.
    pub fn libraries(&self) -> impl Iterator<Item = &Arc<Library>> {
        self.libraries.values()
    }

    pub fn function_count(&self) -> usize {
        self.functions.len()
    }

    /// Whether `lib` may join (replacing the library of its name when `replace`): Redis's
    /// texts for a library that exists and a function another library has.
    ///
    /// # Errors
    /// `Library 'x' already exists` (`quoted`, FUNCTION LOAD's text) or `Library x already
    /// exists` (FUNCTION RESTORE's), `Function f already exists`.
    pub fn check(&self, lib: &Library, replace: bool, quoted: bool) -> Result<(), String> {
        if self.libraries.contains_key(&lib.name) && !replace {
            return Err(if quoted {
                format!("Library '{}' already exists", lib.name)
            } else {
                format!("Library {} already exists", lib.name)
            });
        }
        for f in &lib.functions {
            if let Some((other, _)) = self.functions.get(&f.name.to_ascii_lowercase()) {
                if other.name != lib.name {
                    return Err(format!("Function {} already exists", f.name));
                }
            }
        }
        Ok(())
    }

    /// Adds `lib`, replacing the library of its name.
    pub fn insert(&mut self, lib: Arc<Library>) {
        self.remove(&lib.name);
        for (i, f) in lib.functions.iter().enumerate() {
            self.functions.entry(f.name.to_ascii_lowercase()).or_insert_with(|| (lib.clone(), i));
        }
        self.libraries.insert(lib.name.clone(), lib);
    }

    /// Removes the library named `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(old) = self.libraries.remove(name) else { return false };
        self.functions.retain(|_, (lib, _)| !Arc::ptr_eq(lib, &old));
        true
    }

    /// A registry of `libraries` (in name order); one whose functions collide with an earlier
    /// one's is left out (two nodes loaded them at once: see docs/differences.md) and named
    /// in the second list.
    pub fn build(libraries: Vec<Arc<Library>>) -> (Registry, Vec<String>) {
        let mut sorted = libraries;
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut registry = Registry::default();
        let mut left_out = Vec::new();
        for lib in sorted {
            if registry.check(&lib, false, true).is_ok() {
                registry.insert(lib);
            } else {
                left_out.push(lib.name.clone());
            }
        }
        (registry, left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Option<Vec<String>> {
        split_args(s.as_bytes()).map(|v| v.into_iter().map(|a| String::from_utf8_lossy(&a).into_owned()).collect())
    }

    #[test]
    fn arguments_split_as_sdssplitargs() {
        assert_eq!(args("#!lua name=x"), Some(vec!["#!lua".into(), "name=x".into()]));
        assert_eq!(args("  a   b  "), Some(vec!["a".into(), "b".into()]));
        assert_eq!(args("a \"b c\" 'd e'"), Some(vec!["a".into(), "b c".into(), "d e".into()]));
        assert_eq!(args("\"\\x41\\n\""), Some(vec!["A\n".into()]));
        assert_eq!(args("'it\\'s'"), Some(vec!["it's".into()]));
        assert_eq!(args("\"open"), None);
        assert_eq!(args("\"a\"b"), None);
        assert_eq!(args("'a'b"), None);
        assert_eq!(args(""), Some(vec![]));
    }

    #[test]
    fn shebangs_read_as_redis_reads_them() {
        let meta = |s: &str| parse_meta(s.as_bytes());
        assert_eq!(
            meta("#!lua name=mylib\nreturn 1"),
            Ok(Meta { engine: "lua".into(), name: "mylib".into(), body_start: 16 })
        );
        assert_eq!(meta("#!LUA NAME=up\n").map(|m| (m.engine, m.name)), Ok(("LUA".into(), "up".into())));
        assert_eq!(meta("return 1"), Err("Missing library metadata".into()));
        assert_eq!(meta("#!lua name=x"), Err("Invalid library metadata".into()));
        assert_eq!(meta("#!lua name=\"x\n"), Err("Invalid library metadata".into()));
        assert_eq!(meta("#!lua\n"), Err("Library name was not given".into()));
        assert_eq!(
            meta("#!lua name=a name=b\n"),
            Err("Invalid metadata value, name argument was given multiple times".into())
        );
        assert_eq!(meta("#!lua foo=b\n"), Err("Invalid metadata value given: foo=b".into()));
        assert_eq!(meta("#!lua name=\"q q\"\n").map(|m| m.name), Ok("q q".into()));
        assert!(!valid_name(b"q q") && !valid_name(b"") && !valid_name(b"a-b") && valid_name(b"A_1"));
    }

    fn lib(name: &str, functions: &[&str]) -> Arc<Library> {
        Arc::new(Library {
            name: name.into(),
            code: Bytes::new(),
            sha: String::new(),
            body_start: 0,
            functions: functions
                .iter()
                .map(|f| FunctionInfo { name: (*f).into(), description: None, flags: Flags::default() })
                .collect(),
        })
    }

    #[test]
    fn registry_keeps_function_names_unique_across_libraries() {
        let mut r = Registry::default();
        r.insert(lib("a", &["f", "g"]));
        assert!(r.function(b"F").is_some(), "function names are case-insensitive");
        assert_eq!(r.check(&lib("a", &["h"]), false, true), Err("Library 'a' already exists".into()));
        assert_eq!(r.check(&lib("a", &["h"]), false, false), Err("Library a already exists".into()));
        assert_eq!(r.check(&lib("a", &["f"]), true, true), Ok(()), "a replacement may keep its names");
        assert_eq!(r.check(&lib("b", &["G"]), false, true), Err("Function G already exists".into()));
        r.insert(lib("a", &["h"]));
        assert!(r.function(b"f").is_none() && r.function(b"h").is_some());
        assert!(r.remove("a") && !r.remove("a"));
        assert_eq!(r.function_count(), 0);
        let (built, left_out) = Registry::build(vec![lib("z", &["x"]), lib("b", &["x", "y"])]);
        assert_eq!(left_out, vec!["z".to_owned()]);
        assert_eq!(built.function(b"x").map(|(l, _)| l.name.clone()), Some("b".into()));
    }

    #[test]
    fn flags_list_in_redis_order() {
        let f = Flags::named(b"NO-CLUSTER").unwrap_or_default().with(Flags::named(b"no-writes").unwrap_or_default());
        assert_eq!(f.names().collect::<Vec<_>>(), vec!["no-writes", "no-cluster"]);
        assert!(f.has(Flags::NO_WRITES) && Flags::named(b"bogus").is_none());
    }
}
