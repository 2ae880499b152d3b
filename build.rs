//! The loadable module on macOS: with mlua's `module` feature nothing links Lua in, and the Lua C
//! API comes from the interpreter that loads the module. Linux's linker leaves such symbols
//! undefined in a shared library by default; Apple's needs to be told (as mlua's docs say).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let macos = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "macos");
    if macos && std::env::var_os("CARGO_FEATURE_MODULE").is_some() {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
}
