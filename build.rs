//! Compiles `src/c/longdouble.c`: INCRBYFLOAT's long-double arithmetic, as Redis does it.
fn main() {
    println!("cargo:rerun-if-changed=src/c/longdouble.c");
    cc::Build::new().file("src/c/longdouble.c").warnings(true).compile("kura_longdouble");
}
