#[derive(clap::Args, Debug)]
pub struct WalArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: WalArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

pub fn run_replay(_args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
