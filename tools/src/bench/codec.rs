#[derive(clap::Args, Debug)]
pub struct CodecArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: CodecArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
