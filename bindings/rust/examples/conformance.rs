//! The cross-language conformance scenario (tests/conformance/README.md) through the safe API.
//! Usage: `cargo run --release --example conformance -- <output-dir>`.

use std::convert::Infallible;
use std::path::Path;
use std::process::ExitCode;

use descent::Optimizer;

const NW: usize = 48;
const NB: usize = 6;

fn make(name: &str) -> descent::Result<Optimizer> {
    let mut opt = match name {
        "muon+adamw" => Optimizer::muon_adamw(Some(r#"{"learning_rate": 0.02}"#), Some(r#"{"learning_rate": 0.01}"#), None)?,
        "adamw" => {
            let mut o = Optimizer::new("adamw")?;
            o.configure_json(r#"{"learning_rate": 0.01, "weight_decay": 0.01}"#)?;
            o
        }
        _ => {
            let mut o = Optimizer::new(name)?;
            o.configure_json(r#"{"learning_rate": 0.02, "momentum": 0.95}"#)?;
            o
        }
    };
    opt.add_parameter::<f32>("layer.weight", &[8, 6])?;
    opt.add_parameter::<f32>("layer.bias", &[NB as i64])?;
    opt.set_schedule_fn(|step| Ok::<_, Infallible>(0.01 / (step as f64 + 1.0)))?;
    Ok(opt)
}

fn steps(opt: &mut Optimizer, w: &mut [f32], b: &mut [f32], tw: &[f32], tb: &[f32], count: usize) -> descent::Result<()> {
    let mut gw = [0f32; NW];
    let mut gb = [0f32; NB];
    for _ in 0..count {
        for i in 0..NW {
            gw[i] = w[i] - tw[i];
        }
        for i in 0..NB {
            gb[i] = b[i] - tb[i];
        }
        opt.update().tensor(0, w, &gw).tensor(1, b, &gb).apply()?;
    }
    Ok(())
}

fn run(dir: &Path, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut w: Vec<f32> = (0..NW).map(|i| 0.125f32 * (i % 17) as f32 - 1.0f32).collect();
    let tw: Vec<f32> = (0..NW).map(|i| 0.25f32 * (i % 7) as f32).collect();
    let mut b: Vec<f32> = (0..NB).map(|i| 0.25f32 * i as f32).collect();
    let tb = [-0.5f32; NB];
    let state = dir.join(format!("{name}.state.safetensors"));

    let mut first = make(name)?;
    steps(&mut first, &mut w, &mut b, &tw, &tb, 25)?;
    first.save(&state)?;
    let mut second = make(name)?;
    second.load(&state)?;
    steps(&mut second, &mut w, &mut b, &tw, &tb, 25)?;

    let bytes: Vec<u8> = w.iter().chain(b.iter()).flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.params.bin")), bytes)?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 1 {
        eprintln!("usage: conformance <output-dir>");
        return ExitCode::from(2);
    }
    for name in ["adamw", "muon", "muon+adamw"] {
        if let Err(e) = run(Path::new(&args[0]), name) {
            eprintln!("conformance: {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
