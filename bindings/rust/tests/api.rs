//! Integration tests of the safe API against libdescent. Expected values are worked out by hand
//! in the comments (exact in binary floating point unless a tolerance is given).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use descent::{sys, FlatBuffer, Optimizer, ParameterInfo, Value};

fn sgd(lr: f64) -> Optimizer {
    let mut opt = Optimizer::new("sgd").unwrap();
    opt.set_f64("learning_rate", lr).unwrap();
    opt
}

fn step_of(opt: &descent::OptimizerRef) -> u64 {
    opt.state_get::<u64>("step").unwrap()[0]
}

#[derive(Debug)]
struct MyError(&'static str);
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "my error: {}", self.0)
    }
}
impl std::error::Error for MyError {}

// ---- library information

#[test]
fn version_and_names() {
    assert_eq!(descent::version_number() / 10000, descent::HEADER_VERSION_NUMBER / 10000);
    let v = descent::version_number();
    assert_eq!(descent::version(), format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100));
    assert_eq!(descent::status_name(sys::DESCENT_ERR_UNKNOWN_KEY), "DESCENT_ERR_UNKNOWN_KEY");
    assert_eq!(descent::status_name(sys::DESCENT_ERR_CALLBACK), "DESCENT_ERR_CALLBACK");
    assert_eq!(descent::status_name(12345), "DESCENT_ERR_UNKNOWN_STATUS");
    assert_eq!(descent::dtype_name(sys::DESCENT_FLOAT32), "float32");
    assert_eq!(descent::dtype_name(sys::DESCENT_FLOAT64), "float64");
}

// In the repository, sys.rs keeps step with the header it mirrors (a release bumps both).
#[test]
fn sys_version_matches_the_header_in_the_repository() {
    let header = concat!(env!("CARGO_MANIFEST_DIR"), "/../../include/descent/descent.h");
    let Ok(text) = std::fs::read_to_string(header) else {
        return; // the crate outside the repository: nothing to compare against
    };
    let part = |name: &str| -> u32 {
        let prefix = format!("#define DESCENT_VERSION_{name} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).expect(name);
        line[prefix.len()..].trim().parse().expect(name)
    };
    assert_eq!(
        (sys::DESCENT_VERSION_MAJOR, sys::DESCENT_VERSION_MINOR, sys::DESCENT_VERSION_PATCH),
        (part("MAJOR"), part("MINOR"), part("PATCH"))
    );
}

#[test]
fn every_listed_kind_can_be_created() {
    let kinds = descent::kinds();
    assert_eq!(kinds.len(), 11);
    for kind in kinds {
        let opt = Optimizer::new(kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(opt.kind(), kind);
    }
}

#[test]
fn unknown_kind_is_an_error_with_the_callers_message() {
    let e = Optimizer::new("adamz").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_UNKNOWN_KIND);
    assert_eq!(e.status_name(), "DESCENT_ERR_UNKNOWN_KIND");
    assert!(e.message().contains("'adamz'"), "{}", e.message());
    assert!(e.to_string().starts_with("DESCENT_ERR_UNKNOWN_KIND: "), "{e}");
    let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
    assert!(boxed.to_string().contains("adamz"));
    let e = Optimizer::new("ad\0amw").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_ARGUMENT);
}

// ---- hyperparameters

#[test]
fn typed_hyperparameters_round_trip() {
    let mut adam = Optimizer::new("adam").unwrap();
    let names = adam.hyperparameter_names().unwrap();
    assert_eq!(
        names,
        ["learning_rate", "betas", "eps", "bias_correction", "state_precision", "stochastic_rounding", "rounding_seed"]
    );
    assert_eq!(adam.hyperparameter("state_precision").unwrap(), Value::Str("float32".into()));
    assert_eq!(adam.hyperparameter("learning_rate").unwrap(), Value::None);
    adam.set_f64("learning_rate", 0.1).unwrap();
    // Held as float32, widened back.
    assert_eq!(adam.get_f64("learning_rate").unwrap(), 0.1f32 as f64);
    adam.set_i64("learning_rate", 2).unwrap();
    assert_eq!(adam.get_f64("learning_rate").unwrap(), 2.0);
    adam.set_f64s("betas", &[0.5, 0.25]).unwrap();
    assert_eq!(adam.get_f64s("betas").unwrap(), [0.5, 0.25]);
    assert_eq!(adam.hyperparameter("betas").unwrap(), Value::F64s(vec![0.5, 0.25]));
    adam.set_bool("bias_correction", true).unwrap();
    assert!(adam.get_bool("bias_correction").unwrap());
    assert_eq!(adam.hyperparameter_type("eps").unwrap(), sys::DESCENT_VALUE_DOUBLE);

    let mut muon = Optimizer::new("muon").unwrap();
    assert_eq!(muon.get_i64("ns_steps").unwrap(), 5);
    muon.set_i64("ns_steps", 3).unwrap();
    assert_eq!(muon.hyperparameter("ns_steps").unwrap(), Value::I64(3));
    assert_eq!(muon.get_string("coefficients").unwrap(), "jordan");
    muon.set_str("coefficients", "polar_express").unwrap();
    assert_eq!(muon.hyperparameter("coefficients").unwrap(), Value::Str("polar_express".into()));
    assert_eq!(muon.hyperparameter("custom_coefficients").unwrap(), Value::None);
    muon.set_f64s("custom_coefficients", &[3.0, -4.0, 2.0]).unwrap();
    assert_eq!(muon.get_f64s("custom_coefficients").unwrap(), [3.0, -4.0, 2.0]);
    muon.unset("custom_coefficients").unwrap();
    assert_eq!(muon.hyperparameter_type("custom_coefficients").unwrap(), sys::DESCENT_VALUE_NONE);

    let mut ada = Optimizer::new("adafactor").unwrap();
    ada.set_f64("beta_1", 0.9).unwrap();
    assert_eq!(ada.get_f64("beta_1").unwrap(), 0.9);
    ada.unset("beta_1").unwrap();
    let e = ada.get_f64("beta_1").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_STATE);
}

#[test]
fn bad_hyperparameters_change_nothing() {
    let mut opt = Optimizer::new("adamw").unwrap();
    opt.set_f64("learning_rate", 0.5).unwrap();
    let e = opt.set_f64("no_such_key", 1.0).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_UNKNOWN_KEY);
    assert_eq!(e.message(), "no_such_key: not a hyperparameter of this optimizer");
    assert_eq!(opt.last_error(), e.message());

    let e = opt.set_f64("learning_rate", f64::INFINITY).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_OUT_OF_RANGE);
    assert!(e.message().contains("learning_rate"), "{e}");
    assert_eq!(opt.get_f64("learning_rate").unwrap(), 0.5);

    let e = opt.set_f64s("betas", &[0.9]).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_WRONG_TYPE);
    assert_eq!(opt.get_f64s("betas").unwrap(), [0.9, 0.999]);

    let e = opt.set_bool("weight_decay", true).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_WRONG_TYPE);
    assert_eq!(opt.get_f64("weight_decay").unwrap(), 0.01);

    // configure_json is all or nothing.
    let e = opt.configure_json(r#"{"learning_rate": 0.25, "weight_decay": 0.5, "nope": 1}"#).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_UNKNOWN_KEY);
    assert!(e.message().contains("nope"), "{e}");
    assert_eq!(opt.get_f64("learning_rate").unwrap(), 0.5);
    assert_eq!(opt.get_f64("weight_decay").unwrap(), 0.01);
    let e = opt.configure_json("{not json").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_PARSE);
    opt.configure_json(r#"{"learning_rate": 0.25, "weight_decay": 0.5}"#).unwrap();
    assert_eq!(opt.get_f64("learning_rate").unwrap(), 0.25);
    assert_eq!(opt.get_f64("weight_decay").unwrap(), 0.5);

    let e = opt.set_f64("learning\0rate", 1.0).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_ARGUMENT);
    assert_eq!(opt.get_f64("learning_rate").unwrap(), 0.25);
}

// ---- parameters and updates

#[test]
fn parameter_info_comes_from_the_library() {
    let mut opt = sgd(0.5);
    assert_eq!(opt.add_parameter::<f32>("layers.0.weight", &[8, 6]).unwrap(), 0);
    assert_eq!(opt.add_parameter::<f64>("scale", &[]).unwrap(), 1);
    let w = opt.parameter(0).unwrap();
    assert_eq!(w, ParameterInfo { name: "layers.0.weight".into(), dtype: sys::DESCENT_FLOAT32, shape: vec![8, 6] });
    assert_eq!(w.numel(), 48);
    let s = opt.parameter(1).unwrap();
    assert_eq!((s.name.as_str(), s.dtype, s.shape.len(), s.numel()), ("scale", sys::DESCENT_FLOAT64, 0, 1));
    assert_eq!(opt.parameters().unwrap(), [w, s]);

    // A refused declaration is not recorded anywhere.
    assert!(opt.add_parameter::<f32>("scale", &[2]).is_err());
    assert_eq!(opt.parameters().unwrap().len(), 2);

    // Past the end: the library's error, with the handle's message.
    let e = opt.parameter(2).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_ARGUMENT, "{e}");
    assert!(!e.message().is_empty(), "{e}");

    // A multi optimizer's declarations, likewise.
    let mut multi = Optimizer::muon_adamw(None, None, None).unwrap();
    multi.add_parameter::<f32>("layer.weight", &[4, 3]).unwrap();
    multi.add_parameter::<f32>("layer.bias", &[3]).unwrap();
    let names: Vec<String> = multi.parameters().unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["layer.weight", "layer.bias"]);
}

#[test]
fn sgd_closed_form_by_index_by_name_and_all() {
    // SGD without momentum: p <- p - lr * g. lr = 0.5, g = 0.25 => 1 - 0.125 = 0.875, exact.
    let mut opt = sgd(0.5);
    let w = opt.add_parameter::<f32>("w", &[2, 2]).unwrap();
    let b = opt.add_parameter::<f64>("b", &[3]).unwrap();
    assert_eq!((w, b), (0, 1));
    assert_eq!(opt.parameter_count().unwrap(), 2);
    assert_eq!(opt.parameter_index("b").unwrap(), 1);
    assert_eq!(opt.parameters().unwrap()[0].shape, [2, 2]);

    let mut wv = vec![1.0f32, 2.0, 3.0, 4.0];
    let mut bv = vec![1.0f64, 0.0, -1.0];
    let gw = [0.25f32, 0.5, -1.0, 0.0];
    let gb = [2.0f64, -2.0, 0.125];
    opt.update().tensor(w, &mut wv, &gw).tensor(b, &mut bv, &gb).apply().unwrap();
    assert_eq!(wv, [0.875, 1.75, 3.5, 4.0]);
    assert_eq!(bv, [0.0, 1.0, -1.0625]);
    assert_eq!(step_of(&opt), 1);

    // By name: only b moves; the step still advances once.
    opt.update().tensor_named("b", &mut bv, &gb).apply().unwrap();
    assert_eq!(bv, [-1.0, 2.0, -1.125]);
    assert_eq!(wv, [0.875, 1.75, 3.5, 4.0]);
    assert_eq!(step_of(&opt), 2);

    let mut only_f32 = sgd(0.5);
    only_f32.add_parameter::<f32>("a", &[2]).unwrap();
    only_f32.add_parameter::<f32>("c", &[]).unwrap();
    let (mut a, mut c) = (vec![1.0f32, 1.0], vec![3.0f32]);
    only_f32.update_all(&mut [&mut a, &mut c], &[&[2.0, -2.0], &[1.0]]).unwrap();
    assert_eq!((a, c), (vec![0.0, 2.0], vec![2.5]));
}

#[test]
fn sgd_momentum_closed_form_and_state() {
    // v1 = g = 1 -> p = 1 - 0.5 = 0.5; v2 = 0.5 * 1 + 1 = 1.5 -> p = 0.5 - 0.75 = -0.25.
    let mut opt = Optimizer::new("sgd").unwrap();
    opt.configure_json(r#"{"learning_rate": 0.5, "momentum": 0.5}"#).unwrap();
    opt.add_parameter::<f64>("p", &[1]).unwrap();
    let mut p = [1.0f64];
    for _ in 0..2 {
        opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    }
    assert_eq!(p, [-0.25]);
    assert_eq!(opt.state_keys().unwrap(), ["step", "learning_rate", "p.v"]);
    assert_eq!(opt.state_get::<f64>("p.v").unwrap(), [1.5]);
    assert_eq!(opt.state_get::<f32>("learning_rate").unwrap(), [0.5]);
    let info = opt.state_info("p.v").unwrap();
    assert_eq!((info.dtype, info.shape), (sys::DESCENT_FLOAT64, vec![1]));
}

#[test]
fn adam_first_step_closed_form() {
    // MLX Adam without bias correction: m = 0.1 g, v = 0.001 g^2,
    // p -= lr * m / (sqrt(v) + eps), eps = 1e-8, lr = float32(0.01).
    let mut opt = Optimizer::new("adam").unwrap();
    opt.set_f64("learning_rate", 0.01).unwrap();
    opt.add_parameter::<f64>("w", &[2]).unwrap();
    let mut w = [1.0f64, 1.0];
    opt.update().tensor(0, &mut w, &[2.0, -4.0]).apply().unwrap();
    let lr = 0.01f32 as f64;
    let d0 = lr * 0.2 / (0.004f64.sqrt() + 1e-8);
    let d1 = lr * 0.4 / (0.016f64.sqrt() + 1e-8);
    assert!((w[0] - (1.0 - d0)).abs() < 1e-12, "{w:?}");
    assert!((w[1] - (1.0 + d1)).abs() < 1e-12, "{w:?}");
    let m = opt.state_get::<f64>("w.m").unwrap();
    assert!((m[0] - 0.2).abs() < 1e-15 && (m[1] + 0.4).abs() < 1e-15, "{m:?}");
    let v = opt.state_get::<f64>("w.v").unwrap();
    assert!((v[0] - 0.004).abs() < 1e-15 && (v[1] - 0.016).abs() < 1e-15, "{v:?}");
}

#[test]
fn bad_updates_change_nothing() {
    let mut opt = sgd(0.5);
    opt.add_parameter::<f32>("w", &[3]).unwrap();
    let mut w = vec![1.0f32, 2.0, 3.0];
    let g = [1.0f32; 3];

    // Length differs from the declaration: the library's check.
    let mut short = vec![1.0f32, 2.0];
    let e = opt.update().tensor(0, &mut short, &[1.0, 1.0]).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_SHAPE_MISMATCH, "{e}");
    assert!(e.message().contains("'w'"), "{e}");
    assert_eq!(short, [1.0, 2.0]);

    // Parameter and gradient lengths differ: the binding's check.
    let e = opt.update().tensor(0, &mut w, &[1.0]).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_SHAPE_MISMATCH);

    // Wrong dtype.
    let mut w64 = vec![1.0f64; 3];
    let e = opt.update().tensor(0, &mut w64, &[1.0; 3]).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_DTYPE_MISMATCH);
    assert!(e.message().contains("float64"), "{e}");

    // Unknown index / name; the same parameter twice (with a valid one first).
    let e = opt.update().tensor(7, &mut w, &g).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_UNKNOWN_KEY, "{e}");
    assert!(e.message().contains("indices[0] = 7"), "{e}");
    let e = opt.update().tensor_named("nope", &mut w, &g).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_UNKNOWN_KEY);
    let mut w2 = vec![1.0f32; 3];
    let e = opt.update().tensor(0, &mut w, &g).tensor(0, &mut w2, &g).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_DUPLICATE, "{e}");

    assert_eq!(w, [1.0, 2.0, 3.0]);
    assert_eq!(w2, [1.0; 3]);
    assert_eq!(step_of(&opt), 0);

    // No learning rate: INVALID_STATE.
    let mut nolr = Optimizer::new("adam").unwrap();
    nolr.add_parameter::<f32>("w", &[3]).unwrap();
    let e = nolr.update().tensor(0, &mut w, &g).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_STATE);
    assert_eq!(w, [1.0, 2.0, 3.0]);

    // Bad declarations.
    let e = opt.add_parameter::<f32>("w", &[1]).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_DUPLICATE);
    let e = opt.add_parameter_dtype("h", sys::DESCENT_UINT64, &[1]).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_ARGUMENT);
    let e = opt.add_parameter::<f32>("neg", &[-1]).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_ARGUMENT);
    assert_eq!(opt.parameters().unwrap().len(), 1);
    assert_eq!(opt.parameter_count().unwrap(), 1);
}

#[test]
fn flat_layout_and_update_match_indexed() {
    let declare = |opt: &mut Optimizer| {
        opt.add_parameter::<f32>("a", &[3]).unwrap();
        opt.add_parameter::<f64>("b", &[2, 10]).unwrap();
        opt.add_parameter::<f32>("c", &[]).unwrap();
    };
    let mut flat = Optimizer::new("adamw").unwrap();
    flat.set_f64("learning_rate", 0.01).unwrap();
    declare(&mut flat);
    let layout = flat.flat_layout().unwrap();
    // a: 12 bytes at 0; b: 160 bytes at 64; c: 4 bytes at 64 + 192 = 256; total 320.
    let offsets: Vec<usize> = layout.entries().iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [0, 64, 256]);
    assert_eq!(layout.size(), 320);

    let mut params = FlatBuffer::new(&layout);
    let mut grads = FlatBuffer::new(&layout);
    assert_eq!(params.as_bytes().as_ptr() as usize % 64, 0);
    let a0 = [1.0f32, -2.0, 0.5];
    let b0: Vec<f64> = (0..20).map(|i| i as f64 * 0.25 - 2.0).collect();
    params.view_mut::<f32>(0).unwrap().copy_from_slice(&a0);
    params.view_mut::<f64>(1).unwrap().copy_from_slice(&b0);
    params.view_mut::<f32>(2).unwrap()[0] = 3.0;
    let e = params.view::<f64>(0).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_DTYPE_MISMATCH);
    assert!(params.view::<f32>(3).is_err());

    let mut indexed = Optimizer::new("adamw").unwrap();
    indexed.set_f64("learning_rate", 0.01).unwrap();
    declare(&mut indexed);
    let (mut a, mut b, mut c) = (a0.to_vec(), b0.clone(), vec![3.0f32]);

    for _ in 0..3 {
        for (i, x) in params.view::<f32>(0).unwrap().to_vec().iter().enumerate() {
            grads.view_mut::<f32>(0).unwrap()[i] = x * 2.0;
        }
        for (i, x) in params.view::<f64>(1).unwrap().to_vec().iter().enumerate() {
            grads.view_mut::<f64>(1).unwrap()[i] = x - 1.0;
        }
        grads.view_mut::<f32>(2).unwrap()[0] = params.view::<f32>(2).unwrap()[0];
        flat.update_flat(&mut params, &grads).unwrap();

        let ga: Vec<f32> = a.iter().map(|x| x * 2.0).collect();
        let gb: Vec<f64> = b.iter().map(|x| x - 1.0).collect();
        let gc = [c[0]];
        indexed.update().tensor(0, &mut a, &ga).tensor(1, &mut b, &gb).tensor(2, &mut c, &gc).apply().unwrap();
    }
    assert_eq!(params.view::<f32>(0).unwrap(), a.as_slice());
    assert_eq!(params.view::<f64>(1).unwrap(), b.as_slice());
    assert_eq!(params.view::<f32>(2).unwrap(), c.as_slice());
    assert_ne!(a, a0);

    // A buffer of another layout is refused and nothing changes.
    let mut other = Optimizer::new("sgd").unwrap();
    other.add_parameter::<f32>("x", &[1]).unwrap();
    let small = FlatBuffer::new(&other.flat_layout().unwrap());
    let before = params.as_bytes().to_vec();
    let e = flat.update_flat(&mut params, &small).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_SHAPE_MISMATCH);
    assert_eq!(params.as_bytes(), before.as_slice());
    assert_eq!(step_of(&flat), 3);
}

// ---- state, save, load

#[test]
fn state_get_set_continues_exactly() {
    let make = || {
        let mut o = Optimizer::new("adam").unwrap();
        o.set_f64("learning_rate", 0.01).unwrap();
        o.add_parameter::<f32>("w", &[4]).unwrap();
        o
    };
    let mut a = make();
    let mut w = vec![1.0f32, -1.0, 0.5, 2.0];
    let g = |w: &[f32]| -> Vec<f32> { w.iter().map(|x| x * 0.5 + 0.125).collect() };
    for _ in 0..3 {
        let gw = g(&w);
        a.update().tensor(0, &mut w, &gw).apply().unwrap();
    }
    let mut b = make();
    for key in a.state_keys().unwrap() {
        match a.state_info(&key).unwrap().dtype {
            sys::DESCENT_UINT64 => b.state_set(&key, &a.state_get::<u64>(&key).unwrap()).unwrap(),
            _ => b.state_set(&key, &a.state_get::<f32>(&key).unwrap()).unwrap(),
        }
    }
    assert_eq!(step_of(&b), 3);
    let mut w2 = w.clone();
    let gw = g(&w);
    a.update().tensor(0, &mut w, &gw).apply().unwrap();
    b.update().tensor(0, &mut w2, &gw).apply().unwrap();
    assert_eq!(w, w2);

    // Wrong dtype / count / key: errors, and the output is untouched.
    let mut out = [7.0f64; 4];
    let e = a.state_get_into("w.m", &mut out).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_DTYPE_MISMATCH);
    assert_eq!(out, [7.0; 4]);
    let mut out = [7.0f32; 3];
    let e = a.state_get_into("w.m", &mut out).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_SHAPE_MISMATCH);
    assert_eq!(out, [7.0; 3]);
    let e = a.state_get::<f32>("w.q").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_UNKNOWN_KEY);
    let m = a.state_get::<f32>("w.m").unwrap();
    let e = a.state_set("w.m", &[1.0f32; 5]).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_SHAPE_MISMATCH);
    assert_eq!(a.state_get::<f32>("w.m").unwrap(), m);
}

#[test]
fn save_and_load_file_and_bytes() {
    let make = || {
        let mut o = Optimizer::new("adamw").unwrap();
        o.set_f64("learning_rate", 0.01).unwrap();
        o.add_parameter::<f32>("w", &[2, 3]).unwrap();
        o
    };
    let mut a = make();
    let mut w = vec![0.5f32; 6];
    for _ in 0..4 {
        let gw: Vec<f32> = w.iter().map(|x| x - 0.25).collect();
        a.update().tensor(0, &mut w, &gw).apply().unwrap();
    }
    let bytes = a.save_to_vec().unwrap();
    let dir = std::env::temp_dir().join(format!("descent-rust-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.safetensors");
    a.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    let mut from_file = make();
    from_file.load(&path).unwrap();
    let mut from_bytes = make();
    from_bytes.load_from_slice(&bytes).unwrap();
    assert_eq!(step_of(&from_file), 4);
    assert_eq!(from_bytes.save_to_vec().unwrap(), bytes);

    // Damaged input, missing file: errors, nothing changes.
    let mut fresh = make();
    let e = fresh.load_from_slice(&bytes[..bytes.len() / 2]).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_CORRUPT, "{e}");
    let e = fresh.load(dir.join("missing.safetensors")).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_IO);
    assert!(e.message().contains("missing.safetensors"), "{e}");
    assert_eq!(step_of(&fresh), 0);
    assert_eq!(fresh.state_keys().unwrap(), ["step", "learning_rate"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- schedules

#[test]
fn string_and_json_schedules() {
    // cosine_decay(init 0.1, 1000 steps): step 0 -> 0.1, step 500 -> 0.1 * 0.5 * (1 + cos(pi/2)) = 0.05
    // (evaluated in float32, as MLX does).
    assert_eq!(descent::schedule_value("cosine_decay:0.1:1000:0.0", 0.0, 0).unwrap(), 0.1f32 as f64);
    assert!((descent::schedule_value("cosine_decay:0.1:1000:0.0", 0.0, 500).unwrap() - 0.05).abs() < 1e-8);
    let json = r#"{"schedule": "cosine_decay", "init": 0.1, "decay_steps": 1000}"#;
    assert!((descent::schedule_value(json, 0.0, 500).unwrap() - 0.05).abs() < 1e-8);
    let e = descent::schedule_value("cosine_decay:x", 0.0, 0).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_PARSE);
    assert!(!e.message().is_empty());

    let mut opt = sgd(1.0);
    opt.set_schedule("exponential_decay:0.5:0.5").unwrap();
    assert_eq!(opt.get_f64("learning_rate").unwrap(), 0.5);
    opt.add_parameter::<f32>("p", &[1]).unwrap();
    let mut p = [1.0f32];
    // update 1 uses schedule(0) = 0.5, update 2 schedule(1) = 0.25.
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    assert_eq!(p, [0.25]);
    let e = opt.set_schedule("no_such_schedule:1").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_PARSE);
    opt.clear_schedule().unwrap();
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    // The learning rate keeps its last value, schedule(1) = 0.25.
    assert_eq!(p, [0.0]);
}

#[test]
fn closure_schedule_runs_and_is_dropped() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mut opt = sgd(1.0);
    opt.add_parameter::<f64>("p", &[1]).unwrap();
    // lr(step) = 1 / 2^(step + 1): update 1 uses 0.5, update 2 uses 0.25.
    opt.set_schedule_fn(move |step| {
        seen.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(1.0 / 2f64.powi(step as i32 + 1))
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1); // once when attached
    let mut p = [1.0f64];
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    assert_eq!(p, [0.25]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(Arc::strong_count(&calls), 2);
    // Replacing it drops the closure.
    opt.set_schedule("exponential_decay:0.5:0.5").unwrap();
    assert_eq!(Arc::strong_count(&calls), 1);

    let held = Arc::new(());
    let h = held.clone();
    opt.set_schedule_fn(move |_| {
        let _ = &h;
        Ok::<_, Infallible>(0.5)
    })
    .unwrap();
    assert_eq!(Arc::strong_count(&held), 2);
    drop(opt);
    assert_eq!(Arc::strong_count(&held), 1);
}

#[test]
fn closure_schedule_error_fails_the_update_and_changes_nothing() {
    let mut opt = sgd(1.0);
    opt.add_parameter::<f32>("p", &[2]).unwrap();
    opt.set_schedule_fn(|step| if step < 1 { Ok(0.5) } else { Err(MyError("too far")) }).unwrap();
    let mut p = [1.0f32, 2.0];
    opt.update().tensor(0, &mut p, &[1.0, 1.0]).apply().unwrap();
    assert_eq!(p, [0.5, 1.5]);
    let e = opt.update().tensor(0, &mut p, &[1.0, 1.0]).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_CALLBACK);
    assert!(e.message().contains("my error: too far"), "{e}");
    assert!(!e.is_panic());
    let source = std::error::Error::source(&e).unwrap();
    assert!(source.downcast_ref::<MyError>().is_some());
    assert!(e.callback_error().is_some());
    assert_eq!(p, [0.5, 1.5]);
    assert_eq!(step_of(&opt), 1);
    assert_eq!(opt.get_f64("learning_rate").unwrap(), 0.5);

    // A string error works too; failing when attached leaves the previous schedule.
    let dropped = Arc::new(());
    let d = dropped.clone();
    let e = opt
        .set_schedule_fn(move |_| {
            let _ = &d;
            Err::<f64, _>("not today")
        })
        .unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_CALLBACK);
    assert!(e.message().contains("not today"), "{e}");
    assert_eq!(Arc::strong_count(&dropped), 1, "a refused closure is dropped");
    // Non-finite values are the library's OUT_OF_RANGE.
    let e = opt.set_schedule_fn(|_| Ok::<_, Infallible>(f64::NAN)).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_OUT_OF_RANGE);
}

#[test]
fn closure_schedule_panic_becomes_an_error() {
    let mut opt = sgd(1.0);
    opt.add_parameter::<f32>("p", &[1]).unwrap();
    opt.set_schedule_fn(|step| {
        if step >= 2 {
            panic!("schedule exploded at {step}");
        }
        Ok::<_, Infallible>(0.5)
    })
    .unwrap();
    let mut p = [4.0f32];
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    assert_eq!(p, [3.0]);
    let e = opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_CALLBACK);
    assert!(e.message().contains("schedule exploded at 2"), "{e}");
    assert!(e.is_panic());
    assert_eq!(p, [3.0]);
    assert_eq!(step_of(&opt), 2);
    // The payload can be re-raised.
    let payload = e.take_panic().unwrap();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "schedule exploded at 2");
    assert!(e.take_panic().is_none());
    let e2 = opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap_err();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e2.resume_panic()));
    assert!(caught.is_err());
    // The optimizer is still usable.
    opt.clear_schedule().unwrap();
    opt.update().tensor(0, &mut p, &[1.0]).apply().unwrap();
    assert_eq!(p, [2.5]);
}

// ---- multi

#[test]
fn multi_groups_filters_and_borrowed_handles() {
    let mut multi = Optimizer::new("multi").unwrap();
    let g0 = multi.add_group("sgd", Some(r#"{"learning_rate": 0.5}"#)).unwrap();
    let g1 = multi.add_group("sgd", None).unwrap();
    let g2 = multi.add_group("adamw", Some(r#"{"learning_rate": 0.01}"#)).unwrap();
    assert_eq!((g0, g1, g2), (0, 1, 2));
    assert_eq!(multi.group_count().unwrap(), 3);
    multi.filter_ndim(g0, 2, None).unwrap();
    multi.exclude_name(g0, "*embed*").unwrap();
    multi.filter_name(g1, "*.bias").unwrap();
    {
        let group = multi.group(g1).unwrap();
        assert_eq!(group.kind(), "sgd");
        group.set_f64("learning_rate", 0.25).unwrap();
    }
    for (name, shape) in [("l.weight", &[2i64, 2][..]), ("l.bias", &[2][..]), ("embed", &[2, 2][..]), ("scale", &[1][..])] {
        multi.add_parameter::<f32>(name, shape).unwrap();
    }
    assert_eq!(multi.parameter_group("l.weight").unwrap(), 0);
    assert_eq!(multi.parameter_group("l.bias").unwrap(), 1);
    assert_eq!(multi.parameter_group("embed").unwrap(), 2);
    assert_eq!(multi.parameter_group("scale").unwrap(), 2);
    let e = multi.parameter_group("nope").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_UNKNOWN_KEY);

    let (mut w, mut b, mut em, mut s) = (vec![1.0f32; 4], vec![1.0f32; 2], vec![1.0f32; 4], vec![1.0f32]);
    multi
        .update()
        .tensor(0, &mut w, &[1.0; 4])
        .tensor(1, &mut b, &[1.0; 2])
        .tensor(2, &mut em, &[1.0; 4])
        .tensor(3, &mut s, &[1.0])
        .apply()
        .unwrap();
    assert_eq!(w, [0.5; 4]); // sgd lr 0.5
    assert_eq!(b, [0.75; 2]); // sgd lr 0.25
    assert!(em[0] < 1.0 && em[0] > 0.9);
    let keys = multi.state_keys().unwrap();
    assert!(keys.contains(&"states.0.l.weight.v".to_string()), "{keys:?}");
    assert!(keys.contains(&"states.2.embed.m".to_string()), "{keys:?}");
    let group = multi.group(g2).unwrap();
    assert_eq!(group.state_get::<u64>("step").unwrap(), [1]);
    assert!(group.state_keys().unwrap().contains(&"scale.v".to_string()));
    // Groups are fixed once initialised.
    let e = multi.add_group("sgd", None).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_STATE);
    let e = multi.group(9).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_INVALID_ARGUMENT);
}

#[test]
fn closure_filters_accept_fail_and_panic() {
    let make = || {
        let mut m = Optimizer::new("multi").unwrap();
        m.add_group("sgd", Some(r#"{"learning_rate": 0.5}"#)).unwrap();
        m.add_group("sgd", Some(r#"{"learning_rate": 0.25}"#)).unwrap();
        m.add_parameter::<f32>("a.weight", &[3, 2]).unwrap();
        m.add_parameter::<f32>("a.bias", &[2]).unwrap();
        m
    };
    let mut m = make();
    m.filter_fn(0, |name, shape| Ok::<_, Infallible>(shape.len() == 2 && shape[0] == 3 && name.starts_with("a."))).unwrap();
    assert_eq!(m.parameter_group("a.weight").unwrap(), 0);
    assert_eq!(m.parameter_group("a.bias").unwrap(), 1);

    let mut m = make();
    m.filter_fn(0, |name, _| if name == "a.bias" { Err(MyError("no bias")) } else { Ok(false) }).unwrap();
    let e = m.parameter_group("a.bias").unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_CALLBACK);
    assert!(e.message().contains("my error: no bias"), "{e}");
    let e = m.init().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_CALLBACK);
    assert!(m.state_keys().unwrap().iter().all(|k| !k.ends_with(".v")));

    let mut m = make();
    m.filter_fn(0, |_, _| -> Result<bool, Infallible> { panic!("filter exploded") }).unwrap();
    let mut w = vec![1.0f32; 6];
    let e = m.update().tensor(0, &mut w, &[1.0; 6]).apply().unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_CALLBACK);
    assert!(e.message().contains("filter exploded"), "{e}");
    assert!(e.is_panic());
    assert_eq!(w, [1.0; 6]);

    // A filter on the last group is refused at init.
    let mut m = make();
    m.filter_name(1, "*").unwrap();
    assert_eq!(m.init().unwrap_err().status(), sys::DESCENT_ERR_INVALID_STATE);
}

#[test]
fn muon_adamw_constructor() {
    let mut m = Optimizer::muon_adamw(Some(r#"{"learning_rate": 0.02}"#), Some(r#"{"learning_rate": 0.01}"#), None).unwrap();
    assert_eq!(m.kind(), "multi");
    m.add_parameter::<f32>("layer.weight", &[4, 3]).unwrap();
    m.add_parameter::<f32>("layer.bias", &[3]).unwrap();
    m.add_parameter::<f32>("embed.weight", &[5, 3]).unwrap();
    assert_eq!(m.parameter_group("layer.weight").unwrap(), 0);
    assert_eq!(m.parameter_group("layer.bias").unwrap(), 1);
    assert_eq!(m.parameter_group("embed.weight").unwrap(), 1);
    assert_eq!(m.group(0).unwrap().kind(), "muon");
    assert_eq!(m.group(1).unwrap().kind(), "adamw");

    let e = Optimizer::muon_adamw(Some("{bad"), None, None).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_PARSE);
    assert!(!e.message().is_empty());
}

// ---- clipping

#[test]
fn clip_grad_norm_closed_form() {
    // total = sqrt(3^2 + 4^2 + 0^2) = 5; max_norm 10 leaves them alone.
    let (mut a, mut b) = (vec![3.0f64], vec![4.0f64, 0.0]);
    let total = descent::clip_grad_norm(&mut [&mut a, &mut b], 10.0).unwrap();
    assert_eq!(total, 5.0);
    assert_eq!((a[0], b[0]), (3.0, 4.0));
    // max_norm 1: scale = 1 / (5 + 1e-6).
    let total = descent::clip_grad_norm(&mut [&mut a, &mut b], 1.0).unwrap();
    assert_eq!(total, 5.0);
    assert!((a[0] - 3.0 / (5.0 + 1e-6)).abs() < 1e-15 && (b[0] - 4.0 / (5.0 + 1e-6)).abs() < 1e-15);
    let e = descent::clip_grad_norm(&mut [&mut a], -1.0).unwrap_err();
    assert_eq!(e.status(), sys::DESCENT_ERR_OUT_OF_RANGE);
    assert!(e.message().contains("max_norm"), "{e}");

    let mut opt = sgd(1.0);
    opt.add_parameter::<f32>("x", &[2]).unwrap();
    opt.add_parameter::<f64>("y", &[]).unwrap();
    let mut g = FlatBuffer::new(&opt.flat_layout().unwrap());
    g.view_mut::<f32>(0).unwrap().copy_from_slice(&[0.0, 6.0]);
    g.view_mut::<f64>(1).unwrap()[0] = 8.0;
    assert_eq!(g.clip_grad_norm(1e9).unwrap(), 10.0);
}

// ---- threads

#[test]
fn optimizer_moves_to_another_thread() {
    let mut opt = sgd(0.5);
    opt.add_parameter::<f32>("p", &[2]).unwrap();
    opt.set_schedule_fn(|_| Ok::<_, Infallible>(0.5)).unwrap();
    let handle = std::thread::spawn(move || {
        let mut p = vec![1.0f32, 2.0];
        opt.update().tensor(0, &mut p, &[1.0, 1.0]).apply().unwrap();
        (opt, p)
    });
    let (opt, p) = handle.join().unwrap();
    assert_eq!(p, [0.5, 1.5]);
    assert_eq!(step_of(&opt), 1);
}

#[test]
fn errors_on_many_threads_stay_with_their_call() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..50 {
                    let kind = format!("bad{t}_{i}");
                    let e = Optimizer::new(&kind).unwrap_err();
                    assert!(e.message().contains(&format!("'{kind}'")), "{e}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

// ---- half precision (bfloat16, float16)

/// One Adam step on half-precision parameters under the default "float32" state precision
/// equals the float32 step on the widened values, rounded once to the half type: the expected
/// bits come from an f32 optimizer run through the same binding, rounded by `from_f32` here.
fn half_adam_matches_rounded_f32<T: descent::Float + std::fmt::Debug + PartialEq>(
    widen: fn(T) -> f32,
    narrow: fn(f32) -> T,
    dtype: u32,
) {
    // values exact in both half types
    let p0: Vec<f32> = vec![0.5, -1.25, 3.0, 0.0078125, -2.5, 1.0];
    let g0: Vec<f32> = vec![0.125, -2.0, 0.0, 0.0009765625, 0.75, -0.375];
    let mut p32 = p0.clone();
    let mut ph: Vec<T> = p0.iter().map(|&x| narrow(x)).collect();
    let gh: Vec<T> = g0.iter().map(|&x| narrow(x)).collect();
    assert_eq!(ph.iter().map(|&x| widen(x)).collect::<Vec<_>>(), p0, "inputs exact");
    let mut o32 = Optimizer::new("adam").unwrap();
    let mut oh = Optimizer::new("adam").unwrap();
    for (o, dt) in [(&mut o32, sys::DESCENT_FLOAT32), (&mut oh, dtype)] {
        o.set_f64("learning_rate", 0.01).unwrap();
        o.set_bool("bias_correction", true).unwrap();
        o.add_parameter_dtype("w", dt, &[2, 3]).unwrap();
    }
    for _ in 0..3 {
        o32.update_all(&mut [&mut p32], &[&g0]).unwrap();
        oh.update_all(&mut [&mut ph], &[&gh]).unwrap();
        let want: Vec<T> = p32.iter().map(|&x| narrow(x)).collect();
        assert_eq!(ph, want);
        // float32 policy: float32 state, equal to the float32 run's
        assert_eq!(oh.state_info("w.m").unwrap().dtype, sys::DESCENT_FLOAT32);
        assert_eq!(oh.state_get::<f32>("w.v").unwrap(), o32.state_get::<f32>("w.v").unwrap());
        // the parameter really moved (the comparison can fail)
        assert_ne!(ph.iter().map(|&x| widen(x)).collect::<Vec<_>>(), p0);
        p32 = ph.iter().map(|&x| widen(x)).collect(); // the next f32 step starts from the rounding
    }
    assert_eq!(oh.parameter(0).unwrap().dtype, dtype);
}

#[test]
fn bf16_adam_step_is_the_rounded_f32_step() {
    half_adam_matches_rounded_f32(descent::Bf16::to_f32, descent::Bf16::from_f32, sys::DESCENT_BFLOAT16);
}

#[test]
fn f16_adam_step_is_the_rounded_f32_step() {
    half_adam_matches_rounded_f32(descent::F16::to_f32, descent::F16::from_f32, sys::DESCENT_FLOAT16);
}

#[test]
fn half_state_under_param_policy_and_dtype_mismatch() {
    // "param": state in the parameter's dtype. One SGD-with-momentum step from v = 0:
    // v = bf16(0.9)*0 + g = g; p = p - bf16(0.5)*g = 1 - 0.5*0.25 = 0.875 (all exact).
    let mut o = Optimizer::new("sgd").unwrap();
    o.set_f64("learning_rate", 0.5).unwrap();
    o.set_f64("momentum", 0.9).unwrap();
    o.set_str("state_precision", "param").unwrap();
    o.add_parameter::<descent::Bf16>("w", &[2]).unwrap();
    let mut p = [descent::Bf16::from_f32(1.0); 2];
    let g = [descent::Bf16::from_f32(0.25), descent::Bf16::from_f32(-0.25)];
    o.update_all(&mut [&mut p], &[&g]).unwrap();
    assert_eq!(p, [descent::Bf16::from_f32(0.875), descent::Bf16::from_f32(1.125)]);
    assert_eq!(o.state_info("w.v").unwrap().dtype, sys::DESCENT_BFLOAT16);
    assert_eq!(o.state_get::<descent::Bf16>("w.v").unwrap(), g.to_vec());
    // a float16 gradient for a bfloat16 parameter: refused, nothing changed
    let gf = [descent::F16::from_f32(0.25); 2];
    let mut pf = [descent::F16::from_f32(1.0); 2];
    let err = o.update_all(&mut [&mut pf], &[&gf]).unwrap_err();
    assert_eq!(err.status(), sys::DESCENT_ERR_DTYPE_MISMATCH);
    assert_eq!(step_of(&o), 1);
}

#[test]
fn half_conversions_round_to_nearest_even() {
    use descent::{Bf16, F16};
    assert_eq!(Bf16::from_f32(1.0).0, 0x3F80);
    assert_eq!(Bf16::from_f32(f32::from_bits(0x3F80_8000)).0, 0x3F80); // tie to even
    assert_eq!(Bf16::from_f32(f32::from_bits(0x3F81_8000)).0, 0x3F82); // tie to even (up)
    assert_eq!(Bf16::from_f32(0.999).0, 0x3F80); // MLX's beta2 = 0.999 becomes 1.0
    assert_eq!(F16::from_f32(1e-8).0, 0); // MLX's eps = 1e-8 becomes 0
    assert_eq!(F16::from_f32(65520.0).0, 0x7C00); // overflow to infinity
    assert_eq!(F16::from_f32(5.960_464_5e-8).0, 1); // the smallest subnormal
    assert_eq!(F16(0x0001).to_f32(), 5.960_464_5e-8);
    assert_eq!(F16(0x3C00).to_f32(), 1.0);
    assert!(F16(0x7E00).to_f32().is_nan());
    for bits in 0..=0xFFFFu16 {
        let f = F16(bits);
        if !f.to_f32().is_nan() {
            assert_eq!(F16::from_f32(f.to_f32()), f);
        }
        let b = Bf16(bits);
        if !b.to_f32().is_nan() {
            assert_eq!(Bf16::from_f32(b.to_f32()), b);
        }
    }
}
