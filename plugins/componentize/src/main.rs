//! `componentize OUT_DIR CORE.wasm...`: wraps each plugin's core wasm module (built for
//! wasm32-unknown-unknown with wit-bindgen, whose custom section carries the WIT world) into a
//! component, validates it, checks that it targets `p2phost:plugin/plugin` with the expected
//! exports and imports nothing else than `p2phost:plugin/host`, and writes `OUT_DIR/NAME.wasm`,
//! where NAME is the file name less `p2p_plugin_` and `.wasm`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use wit_component::{ComponentEncoder, DecodedWasm};
use wit_parser::WorldItem;

/// The contract's package, as written in plugin-api/wit/plugin.wit.
const PACKAGE: &str = "p2phost:plugin@0.1.0";
const EXPORTS: [&str; 5] = ["describe", "configure", "pre-send", "chunk", "complete"];

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), inputs) = (args.next(), args.map(PathBuf::from).collect::<Vec<_>>()) else {
        bail!("usage: componentize OUT_DIR CORE.wasm...");
    };
    ensure!(
        !inputs.is_empty(),
        "usage: componentize OUT_DIR CORE.wasm..."
    );
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).with_context(|| format!("while creating {}", out.display()))?;
    for input in &inputs {
        let written = componentize(input, &out)
            .with_context(|| format!("while componentizing {}", input.display()))?;
        println!("{}", written.display());
    }
    Ok(())
}

fn componentize(input: &Path, out: &Path) -> Result<PathBuf> {
    let core = std::fs::read(input).context("while reading the core module")?;
    let component = ComponentEncoder::default()
        .module(&core)
        .context("no p2phost:plugin world in it: was it built with p2p-plugin-api (wit-bindgen)?")?
        .validate(true)
        .encode()
        .context("while encoding the component")?;
    check(&component)?;
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the input has no file name")?;
    let name = stem
        .strip_prefix("p2p_plugin_")
        .unwrap_or(stem)
        .replace('_', "-");
    let path = out.join(format!("{name}.wasm"));
    std::fs::write(&path, &component)
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(path)
}

/// The component targets the contract's world: its exports are the five functions, its only
/// import the host interface.
fn check(component: &[u8]) -> Result<()> {
    let DecodedWasm::Component(resolve, world) =
        wit_component::decode(component).context("while decoding the component")?
    else {
        bail!("not a component");
    };
    let world = &resolve.worlds[world];
    let mut exports: Vec<String> = world
        .exports
        .iter()
        .map(|(key, _)| resolve.name_world_key(key))
        .collect();
    exports.sort();
    let mut expected: Vec<String> = EXPORTS.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    ensure!(
        exports == expected,
        "exports {exports:?}, the contract's are {expected:?}"
    );
    for (key, item) in &world.imports {
        let WorldItem::Interface { id, .. } = item else {
            // Types the world uses from its interfaces are listed as imports too.
            if matches!(item, WorldItem::Type { .. }) {
                continue;
            }
            bail!(
                "imports {}, which the host does not provide",
                resolve.name_world_key(key)
            );
        };
        let name = resolve.id_of(*id).unwrap_or_default();
        ensure!(
            name == "p2phost:plugin/host@0.1.0" || name == "p2phost:plugin/types@0.1.0",
            "imports {name}, which the host does not provide (only {PACKAGE} host)"
        );
    }
    Ok(())
}
