//! A tiny linear regression, y = x W^T + b, trained with Muon (for W) + AdamW (for b) and a
//! closure learning-rate schedule. Run: `cargo run --release --example train`.

use std::convert::Infallible;

use descent::Optimizer;

const IN: usize = 4;
const OUT: usize = 3;
const N: usize = 64;

fn main() -> Result<(), descent::Error> {
    // Data from a known model, with inputs from a small deterministic generator.
    let mut seed = 12345u32;
    let mut rand = move || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    };
    let true_w: Vec<f32> = (0..OUT * IN).map(|_| rand()).collect();
    let true_b = [0.5f32, -0.25, 1.0];
    let xs: Vec<f32> = (0..N * IN).map(|_| rand()).collect();
    let ys: Vec<f32> = (0..N * OUT)
        .map(|k| {
            let (n, o) = (k / OUT, k % OUT);
            true_b[o] + (0..IN).map(|i| true_w[o * IN + i] * xs[n * IN + i]).sum::<f32>()
        })
        .collect();

    let mut opt = Optimizer::muon_adamw(Some(r#"{"learning_rate": 0.05}"#), Some(r#"{"learning_rate": 0.05}"#), None)?;
    let w_index = opt.add_parameter::<f32>("linear.weight", &[OUT as i64, IN as i64])?;
    let b_index = opt.add_parameter::<f32>("linear.bias", &[OUT as i64])?;
    println!("linear.weight -> group {} ({})", opt.parameter_group("linear.weight")?, opt.group(0)?.kind());
    println!("linear.bias   -> group {} ({})", opt.parameter_group("linear.bias")?, opt.group(1)?.kind());
    // Linear decay to 10% over the run.
    opt.set_schedule_fn(|step| Ok::<_, Infallible>(0.05 * (1.0 - 0.9 * (step as f64 / 300.0).min(1.0))))?;

    let mut w = vec![0.0f32; OUT * IN];
    let mut b = vec![0.0f32; OUT];
    let mut first_loss = None;
    let mut loss = 0.0;
    for step in 0..300 {
        // Forward, MSE loss and its gradient by hand.
        let mut gw = vec![0.0f32; OUT * IN];
        let mut gb = vec![0.0f32; OUT];
        loss = 0.0;
        for n in 0..N {
            for o in 0..OUT {
                let pred = b[o] + (0..IN).map(|i| w[o * IN + i] * xs[n * IN + i]).sum::<f32>();
                let err = pred - ys[n * OUT + o];
                loss += err * err / (N * OUT) as f32;
                let d = 2.0 * err / (N * OUT) as f32;
                gb[o] += d;
                for i in 0..IN {
                    gw[o * IN + i] += d * xs[n * IN + i];
                }
            }
        }
        first_loss.get_or_insert(loss);
        let norm = descent::clip_grad_norm(&mut [&mut gw, &mut gb], 1.0)?;
        opt.update().tensor(w_index, &mut w, &gw).tensor(b_index, &mut b, &gb).apply()?;
        if step % 50 == 0 {
            println!("step {step:3}  loss {loss:.6}  grad norm {norm:.4}  lr {:.4}", opt.group(0)?.get_f64("learning_rate")?);
        }
    }
    let first = first_loss.unwrap_or(loss);
    println!("final loss {loss:.6} (from {first:.6}); bias {b:?}, true {true_b:?}");
    if loss >= first * 0.01 {
        eprintln!("train: the loss did not fall by 100x");
        std::process::exit(1);
    }
    Ok(())
}
