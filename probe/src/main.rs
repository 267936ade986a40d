//! `probe`: see the library for what it does.

fn main() {
    let code = probe::run(
        std::env::args_os(),
        std::env::var_os("HEALTH_ADDR"),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
