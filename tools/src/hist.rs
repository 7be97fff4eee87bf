#[derive(clap::Args, Debug)]
pub struct HistArgs {}

pub fn run(_args: HistArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
