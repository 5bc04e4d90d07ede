//! Prints the CRDs as YAML, or with `--write` writes them to `crds/` and
//! `charts/spate/crds/` (run from the workspace root).

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let files = spate_operator::crd::generated_files();
    if std::env::args().any(|a| a == "--write") {
        for dir in spate_operator::crd::CRD_DIRS {
            std::fs::create_dir_all(dir)?;
            for (name, yaml) in &files {
                let path = Path::new(dir).join(name);
                std::fs::write(&path, yaml)?;
                eprintln!("wrote {}", path.display());
            }
        }
    } else {
        let docs: Vec<&str> = files.iter().map(|(_, yaml)| yaml.as_str()).collect();
        print!("{}", docs.join("---\n"));
    }
    Ok(())
}
