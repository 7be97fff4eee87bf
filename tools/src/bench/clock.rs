#[derive(clap::Args, Debug)]
pub struct ClockArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: ClockArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
