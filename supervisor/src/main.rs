fn main() {
    std::process::exit(supervisor::main(std::env::args_os()));
}
