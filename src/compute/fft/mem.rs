//! A scan-axes FFT held in memory, for small datasets (the demo) and tests. It uses the same
//! kernels as the out-of-core passes (crop/bin, 2-D FFT with fftshift).

use super::kernels::{Plans2, crop_bin};
use super::types::{Elem, Layout};
use super::{FftSource, Part};
use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use num_complex::Complex32;
use rayon::prelude::*;

/// A scan-axes FFT held in memory, for small datasets (the demo) and tests: the detector is
/// binned so that the whole transform stays under `max_elems` complex values.
pub struct MemFft {
    shape: [usize; 4],
    bin: usize,
    /// [qy][qx][ky][kx], fft-shifted over Q.
    data: Vec<Complex32>,
}

impl MemFft {
    pub fn compute(ds: &dyn Dataset, max_elems: usize, progress: &Progress) -> Result<MemFft> {
        let s = ds.scan().clone();
        let (dr, dc) = ds.det();
        let (qr, qc) = (s.rows, s.cols);
        let mut bin = 1;
        while qr * qc * (dr / bin) * (dc / bin) > max_elems && bin < dr.min(dc) {
            bin *= 2;
        }
        let (kr, kc) = (dr / bin, dc / bin);
        if kr == 0 || kc == 0 || qr * qc * kr * kc > max_elems {
            return Err(Error::Invalid(format!("{}: too large for an in-memory FFT", ds.info().path.display())));
        }
        let (nq, nk) = (qr * qc, kr * kc);
        // the same crop/bin and 2-D transform kernels as the out-of-core passes
        let l = Layout {
            scan: (qr, qc),
            det: (dr, dc),
            det_box: [0, 0, kr * bin, kc * bin],
            bin,
            k: (kr, kc),
            chunk: [1, 1, 1, 1],
            elem: Elem::F32,
            half: false,
        };
        // [k][q] layout for the transforms
        let mut g = vec![Complex32::new(0.0, 0.0); nk * nq];
        progress.set_total(nq as u64);
        let mut buf = FrameBuf::new(ds.info().pixel_type);
        let mut scratch = ReadScratch::default();
        let mut vals = vec![0f32; nk];
        let present = ds.positions_present().min(nq);
        let block = 64;
        let mut p = 0;
        while p < present {
            progress.check()?;
            let n = block.min(present - p);
            ds.read_positions(p, n, &mut buf, &mut scratch)?;
            for i in 0..n {
                crate::with_frames!(&buf, v => crop_bin(&v[i * dr * dc..(i + 1) * dr * dc], &l, &mut vals));
                for (k, &x) in vals.iter().enumerate() {
                    g[k * nq + p + i].re = x;
                }
            }
            p += n;
            progress.add(n as u64, (n * dr * dc * ds.info().pixel_type.bytes()) as u64);
        }
        let plans = Plans2::new(qr, qc);
        g.par_chunks_mut(nq)
            .for_each_init(|| (Vec::new(), Vec::new()), |(tmp, scr), plane| plans.fft2_shift(plane, tmp, scr));
        // reorder to [q][k]
        let mut data = vec![Complex32::new(0.0, 0.0); nk * nq];
        transpose::transpose(&g, &mut data, nq, nk);
        Ok(MemFft { shape: [qr, qc, kr, kc], bin, data })
    }

    fn part(c: Complex32, p: Part) -> f32 {
        match p {
            Part::Amp => c.norm(),
            Part::Phase => c.arg(),
            Part::Real => c.re,
            Part::Imag => c.im,
        }
    }

    fn region(n: usize, c: usize, half: usize) -> std::ops::Range<usize> {
        c.saturating_sub(half)..(c + half + 1).min(n)
    }
}

impl FftSource for MemFft {
    fn shape(&self) -> [usize; 4] {
        self.shape
    }
    fn label(&self) -> String {
        format!("in-memory scan FFT (detector binned {}x)", self.bin)
    }
    fn k_origin_bin(&self) -> ((usize, usize), usize) {
        ((0, 0), self.bin)
    }
    fn power_map(&self) -> Result<Vec<f32>> {
        let nk = self.shape[2] * self.shape[3];
        Ok(self.data.chunks_exact(nk).map(|c| c.iter().map(|v| v.norm_sqr()).sum::<f32>()).collect())
    }
    fn detector_image(&self, q: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        let [qr, qc, kr, kc] = self.shape;
        let nk = kr * kc;
        let mut acc = vec![Complex32::new(0.0, 0.0); nk];
        let mut amp = vec![0f32; nk];
        let mut n = 0f32;
        for y in Self::region(qr, q.0, half) {
            for x in Self::region(qc, q.1, half) {
                let s = &self.data[(y * qc + x) * nk..(y * qc + x + 1) * nk];
                for i in 0..nk {
                    acc[i] += s[i];
                    amp[i] += s[i].norm();
                }
                n += 1.0;
            }
        }
        Ok(match part {
            Part::Amp => amp.iter().map(|a| a / n).collect(),
            p => acc.iter().map(|c| Self::part(*c / n, p)).collect(),
        })
    }
    fn q_image(&self, k: (usize, usize), half: usize, part: Part) -> Result<Vec<f32>> {
        let [qr, qc, kr, kc] = self.shape;
        let nk = kr * kc;
        let ks: Vec<usize> =
            Self::region(kr, k.0, half).flat_map(|y| Self::region(kc, k.1, half).map(move |x| y * kc + x)).collect();
        let n = ks.len() as f32;
        Ok((0..qr * qc)
            .map(|q| {
                let s = &self.data[q * nk..(q + 1) * nk];
                match part {
                    Part::Amp => ks.iter().map(|&i| s[i].norm()).sum::<f32>() / n,
                    p => Self::part(ks.iter().map(|&i| s[i]).sum::<Complex32>() / n, p),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::fft::FftSource;
    use crate::format::synth::{self, SynthSpec};

    #[test]
    fn mem_fft_dc_is_sum() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SynthSpec { rows: 8, cols: 8, det: 256, ..Default::default() };
        let f = dir.path().join("a.mib");
        synth::write(&f, &spec, &|_, _| {}).unwrap();
        let ds = crate::dataset::open(&f, &Default::default()).unwrap();
        let m = MemFft::compute(ds.as_ref(), 1 << 16, &Progress::new("t", 0)).unwrap();
        let [qr, qc, kr, kc] = m.shape();
        assert_eq!((qr, qc), (8, 8));
        assert_eq!(kr * kc * 64, 1 << 16);
        // G(Q=0, K) = sum over scan of the binned frames
        let bin = 256 / kr;
        let dc = m.detector_image((4, 4), 0, Part::Real).unwrap();
        let mut expect = 0f64;
        for p in 0..64 {
            let fr = synth::expected_frame(&spec, p);
            for y in 0..bin {
                for x in 0..bin {
                    expect += fr[y * 256 + x] as f64;
                }
            }
        }
        assert!((dc[0] as f64 - expect).abs() <= 1e-4 * expect.max(1.0), "{} vs {expect}", dc[0]);
        let pm = m.power_map().unwrap();
        let max = pm.iter().cloned().fold(0f32, f32::max);
        assert_eq!(pm[4 * 8 + 4], max, "DC carries the most power");
    }
}
