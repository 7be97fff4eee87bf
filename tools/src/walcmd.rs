#[derive(clap::Subcommand, Debug)]
pub enum WalCmd {
    Info,
}

pub fn run(_cmd: WalCmd) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
