//! `imcc quantize`: quantize numbers from stdin with one of the runtime's formats.

use imcc_runtime::config::Phase;
use imcc_runtime::formats::{int, radix4};
use ndarray::Array1;
use std::fmt;
use std::fmt::Write as _;
use std::process::ExitCode;

/// A format named on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    /// Radix-4 FP4, even grid.
    Radix4,
    /// Radix-4 FP4, odd grid.
    Radix4Odd,
    /// INT4 by SAWB (coefficients 12.035, 12.03).
    Int4Sawb,
    /// INT4 by PACT with this alpha.
    Int4Pact(f32),
    /// Symmetric INT8.
    Int8,
}

/// Why quantizing failed; the message is for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeError(pub String);

impl fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SAWB coefficients of the 15-level grid (the language's defaults).
const SAWB_C1: f64 = 12.035;
const SAWB_C2: f64 = 12.03;

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "radix4" => Ok(Format::Radix4),
            "radix4-odd" => Ok(Format::Radix4Odd),
            "int4-sawb" => Ok(Format::Int4Sawb),
            "int8" => Ok(Format::Int8),
            _ => match s.strip_prefix("int4-pact:") {
                Some(a) => match a.parse::<f32>() {
                    Ok(alpha) if alpha > 0.0 && alpha.is_finite() => Ok(Format::Int4Pact(alpha)),
                    _ => Err(format!("`{a}` is not a positive PACT alpha (write e.g. `int4-pact:6`)")),
                },
                None => {
                    Err(format!("unknown format `{s}`: use radix4, radix4-odd, int4-sawb, int4-pact:ALPHA or int8"))
                }
            },
        }
    }
}

/// `tok` for an error message: at most 40 characters, the rest counted.
fn shown(tok: &str) -> String {
    match tok.char_indices().nth(40) {
        Some((cut, _)) => format!("{}… ({} more bytes)", &tok[..cut], tok.len() - cut),
        None => tok.to_string(),
    }
}

/// Parses whitespace-separated decimal numbers; every one must be finite.
pub fn parse_numbers(text: &str) -> Result<Vec<f32>, QuantizeError> {
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        for tok in line.split_whitespace() {
            match tok.parse::<f32>() {
                Ok(v) if v.is_finite() => out.push(v),
                Ok(_) => {
                    return Err(QuantizeError(format!("line {}: `{}` is not a finite number", ln + 1, shown(tok))));
                }
                Err(_) => {
                    return Err(QuantizeError(format!("line {}: `{}` is not a decimal number", ln + 1, shown(tok))));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(QuantizeError("no numbers on standard input".into()));
    }
    Ok(out)
}

/// Quantizes `x`; returns the scale used and the dequantized values. The scale is the GradScale
/// factor `s` for radix-4 (values are `Q(x·s)/s`) and the clip range for integer formats
/// (SAWB's alpha, PACT's alpha, INT8's max). `scale` fixes it instead of choosing it from `x`.
pub fn quantize(format: Format, x: &[f32], scale: Option<f32>) -> Result<(f32, Vec<f32>), QuantizeError> {
    if let Some(s) = scale
        && !(s > 0.0 && s.is_finite())
    {
        return Err(QuantizeError(format!("--scale must be a positive number, not {s}")));
    }
    let x = Array1::from(x.to_vec());
    let mut out = x.clone();
    let s = match format {
        Format::Radix4 | Format::Radix4Odd => {
            let phase = if format == Format::Radix4 { Phase::Even } else { Phase::Odd };
            let s = scale.unwrap_or_else(|| radix4::gradscale(radix4::max_abs(&x)));
            radix4::quantize_scaled(&x, 8, phase, s, &mut out);
            s
        }
        Format::Int4Sawb => {
            let alpha = scale.unwrap_or_else(|| int::sawb_alpha(&x, SAWB_C1, SAWB_C2));
            if alpha == 0.0 {
                out.fill(0.0);
            } else {
                out.zip_mut_with(&x, |o, &v| *o = alpha / 7.0 * int::sawb_code(v, alpha) as f32);
            }
            alpha
        }
        Format::Int4Pact(alpha) => {
            if scale.is_some() {
                return Err(QuantizeError(
                    "int4-pact takes its alpha in the format (`int4-pact:ALPHA`), not --scale".into(),
                ));
            }
            int::pact(&x, alpha, &mut out);
            alpha
        }
        Format::Int8 => match scale {
            None => int::int8(&x, &mut out) * 127.0,
            Some(m) => {
                let m64 = m as f64;
                out.zip_mut_with(&x, |o, &v| *o = (int::int8_code(v, m).clamp(-127, 127) as f64 * m64 / 127.0) as f32);
                m
            }
        },
    };
    Ok((s, out.to_vec()))
}

/// `imcc quantize`: numbers from stdin, quantized and dequantized, one per line or as JSON.
pub fn command(format: Format, scale: &str, json: bool) -> ExitCode {
    let scale = match scale {
        "auto" => None,
        s => match s.parse::<f32>() {
            Ok(v) => Some(v),
            Err(_) => {
                errln!("error: --scale must be `auto` or a number, not `{s}`");
                return ExitCode::from(2);
            }
        },
    };
    let mut text = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
        errln!("error: cannot read standard input: {e}");
        return ExitCode::from(1);
    }
    let result = parse_numbers(&text).and_then(|x| quantize(format, &x, scale));
    match result {
        Ok((s, values)) => {
            if json {
                outln!("{}", serde_json::json!({ "scale": s, "values": values }));
            } else {
                // One write for the whole output, not one per line.
                let mut text = String::with_capacity(values.len() * 12);
                for v in &values {
                    let _ = writeln!(text, "{v}");
                }
                out!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_bad_token_is_shortened_in_the_message() {
        let tok = "x".repeat(10_000_000);
        let e = parse_numbers(&format!("1 {tok}")).unwrap_err().0;
        assert!(e.len() < 120 && e.contains("(9999960 more bytes)"), "{}", &e[..e.len().min(200)]);
    }

    #[test]
    fn finite_input_gives_finite_output_at_any_scale() {
        let x = [1.0f32, -3.0e38, 1e-40, 0.0];
        for f in [Format::Radix4, Format::Radix4Odd, Format::Int8] {
            for s in [None, Some(1e-45), Some(1e-30), Some(f32::MAX)] {
                let (_, v) = quantize(f, &x, s).unwrap();
                assert!(v.iter().all(|v| v.is_finite()), "{f:?} at scale {s:?}: {v:?}");
            }
        }
        let (_, v) = quantize(Format::Int8, &[1e-38, 0.5e-38], None).unwrap();
        assert!(v.iter().all(|v| v.is_finite()), "{v:?}");
        let (_, v) = quantize(Format::Int8, &[f32::MAX, 1.0], None).unwrap();
        assert_eq!(v[0], f32::MAX);
    }

    #[test]
    fn worked_example_through_the_command_path() {
        let (s, v) = quantize(Format::Radix4, &[0.012, 0.0047], None).unwrap();
        assert_eq!(s, 64.0);
        assert_eq!(v, vec![1.0 / 64.0, 0.00390625]);
        let (_, v) = quantize(Format::Radix4Odd, &[0.012, 0.0047], None).unwrap();
        assert_eq!(v[1], 0.001953125);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse_numbers("1 2 x").is_err());
        assert!(parse_numbers("1 NaN").is_err());
        assert!(parse_numbers("inf").is_err());
        assert!(parse_numbers(" \n ").is_err());
        assert!("int4-pact:-1".parse::<Format>().is_err());
        assert!("fp8".parse::<Format>().is_err());
        assert!(quantize(Format::Int8, &[1.0], Some(-1.0)).is_err());
    }

    #[test]
    fn integer_formats() {
        let (alpha, v) = quantize(Format::Int4Pact(6.0), &[-1.0, 2.9, 7.0], None).unwrap();
        assert_eq!(alpha, 6.0);
        assert_eq!(v, vec![0.0, 2.8, 6.0]);
        let (m, v) = quantize(Format::Int8, &[1.27, -0.635], None).unwrap();
        assert!((m - 1.27).abs() < 1e-6);
        assert_eq!(v[0], 1.27);
        let (m, v) = quantize(Format::Int8, &[2.0, 0.5], Some(1.0)).unwrap();
        assert_eq!(m, 1.0);
        assert_eq!(v[0], 1.0, "saturates at the given range");
    }
}
