//! The fuzz targets' bodies (`kura::fuzzing`, which cargo-fuzz runs in `fuzz/`) in every
//! `cargo test` (issue 24, point 6): each over its seeds (kura's own encodings, and in
//! `fuzz/seeds/<target>/` every input a fuzzer crashed a decoder with), then over a few
//! thousand inputs made from them by a fuzzer's mutations and a few hundred random ones, from
//! a fixed seed. Far from a fuzzer's millions of runs (`.ci/fuzz` makes those), but it keeps
//! every body building and running, and replays every crash found.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kura::fuzzing::{seeds, TARGETS};

/// Mutated and random inputs per target.
const MUTATED: usize = 3000;
const RANDOM: usize = 300;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The seed files of `target`, sorted by name.
fn seed_files(target: &str) -> Vec<(String, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join("seeds").join(target)) else { return Vec::new() };
    let mut files: Vec<(String, Vec<u8>)> = dir
        .map(|e| e.expect("a seed"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("a seed reads")))
        .collect();
    files.sort();
    files
}

/// xorshift64*: enough randomness for mutations, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `input` changed as libFuzzer changes its inputs: bytes flipped, set to edge values,
/// inserted, erased, repeated, or another seed spliced in.
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = [0, 1, 0x7f, 0x80, 0xff, b'\r', b'\n', b'*', b'$'][rng.below(9)];
            }
            2 => {
                let n = 1 + rng.below(8);
                let bytes = rng.bytes(n);
                out.splice(at..at, bytes);
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            5 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len());
                let piece = &other[from..(from + 1 + rng.below(64)).min(other.len())];
                out.splice(at..at, piece.iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn every_target_runs_over_its_seeds_and_their_mutations() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for &(target, body) in TARGETS {
        let mut inputs: Vec<Vec<u8>> = seeds(target);
        assert!(!inputs.is_empty(), "{target} has seeds");
        inputs.extend(seed_files(target).into_iter().map(|(_, bytes)| bytes));
        let known = inputs.len();
        for i in 0..MUTATED {
            let input = mutate(&mut rng, &inputs[i % known], &inputs[..known]);
            inputs.push(input);
        }
        for _ in 0..RANDOM {
            let n = rng.below(256);
            inputs.push(rng.bytes(n));
        }
        let start = std::time::Instant::now();
        for input in &inputs {
            if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
                panic!("fuzz target {target} failed on input {input:02x?}");
            }
        }
        println!("{target}: {} inputs in {:?}", inputs.len(), start.elapsed());
    }
}

/// `fuzz/Cargo.toml` has a target for every body, each a file calling it.
#[test]
fn the_fuzz_crate_has_every_target() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for &(target, _) in TARGETS {
        assert!(manifest.contains(&format!("name = \"{target}\"")), "fuzz/Cargo.toml lacks {target}");
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let code = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(code.contains(&format!("kura::fuzzing::{target}(data)")), "{} calls its body", file.display());
    }
    assert_eq!(manifest.matches("[[bin]]").count(), TARGETS.len(), "no target without a body");
}

/// Writes each target's seeds into `fuzz/seeds/<target>/` (as `kura-<n>`): run after a format
/// changes, with `cargo test --profile ci --test suite fuzz_corpus::write_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/seeds/"]
fn write_seeds() {
    for &(target, _) in TARGETS {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).expect("a seed directory");
        for (name, _) in seed_files(target).iter().filter(|(name, _)| name.starts_with("kura-")) {
            std::fs::remove_file(dir.join(name)).expect("an old seed removed");
        }
        for (i, seed) in seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("kura-{i}")), seed).expect("a seed written");
        }
    }
}
