// Compiles the small C helper that does INCRBYFLOAT's arithmetic in `long double`, exactly as
// Redis does (see src/float.rs for why).
fn main() {
    println!("cargo:rerun-if-changed=src/core/ldouble.c");
    cc::Build::new().file("src/core/ldouble.c").warnings(true).compile("magpie_ldouble");
}
