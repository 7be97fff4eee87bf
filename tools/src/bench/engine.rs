#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: EngineArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
