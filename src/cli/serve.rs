//! `cloner-worker serve`: the service until SIGINT/SIGTERM, then a drain (see
//! [`crate::service`]).

use anyhow::Context as _;
use clap::Args;

use crate::config::Settings;
use crate::pool::app::Hooks;
use crate::service::{self, shutdown_signal};

#[derive(Args)]
pub struct ServeArgs {
    /// Upstream base URL (overrides upstream.base_url).
    #[arg(long)]
    upstream: Option<String>,
}

impl ServeArgs {
    pub fn run(self, mut settings: Settings) -> anyhow::Result<()> {
        if let Some(url) = self.upstream {
            settings.upstream.base_url = Some(url);
            settings.validate().context("--upstream")?;
        }
        actix_rt::System::new().block_on(async {
            let shutdown = shutdown_signal();
            let report = service::serve(&settings, Hooks::default(), shutdown).await?;
            if report.unfinished > 0 {
                log::warn!(
                    "{} chunks were not finished; the group delivers them again",
                    report.unfinished
                );
            }
            anyhow::Ok(())
        })
    }
}
