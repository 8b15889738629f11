use std::path::Path;

use anyhow::bail;
use ferry_core::Spec;

/// Prints a one-line summary of a valid spec, or every error with its field path.
pub fn run(path: &Path) -> anyhow::Result<()> {
    match Spec::from_path(path) {
        Ok(spec) => {
            println!(
                "{}: ok ({} shards, {} tables, {} domains)",
                path.display(),
                spec.source.shards.len(),
                spec.tables.len(),
                spec.domains.len()
            );
            Ok(())
        }
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{}: {error}", path.display());
            }
            bail!("{} error(s) in {}", errors.0.len(), path.display())
        }
    }
}
