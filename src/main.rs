//! `cloner-worker`: the command line of the service; see [`cloner_worker::cli`].

fn main() -> anyhow::Result<()> {
    cloner_worker::cli::main()
}
