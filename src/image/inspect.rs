//! `rootstrap inspect`: a serializable summary of an opened image.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::read::OpenedImage;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSummary {
    /// Blob digest when the image states one (legacy docker archives do not).
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// The blob's size (compressed, when the layer is).
    pub size: u64,
    /// The uncompressed tar's size, when it was measured
    /// ([`InspectReport::with_unpacked_sizes`]).
    pub unpacked_size: Option<u64>,
    pub diff_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigSummary {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    pub created: Option<String>,
    pub user: Option<String>,
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    pub source: String,
    pub reference: Option<String>,
    /// Manifest digest (what a registry would call the image digest).
    pub digest: Option<String>,
    /// Config digest (what Docker shows as the image ID).
    pub config_digest: String,
    /// The image index the image was taken from (a multi-platform image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<crate::image::read::IndexSummary>,
    pub config: ConfigSummary,
    pub layers: Vec<LayerSummary>,
    /// Sum of stored layer sizes plus the config.
    pub total_size: u64,
    pub history: Vec<String>,
}

pub fn inspect(image: &OpenedImage) -> InspectReport {
    let c = &image.config;
    let layers: Vec<LayerSummary> = image
        .layers
        .iter()
        .map(|l| LayerSummary {
            digest: l.digest.map(|d| d.to_string()),
            media_type: l.media_type.clone(),
            size: l.size,
            unpacked_size: None,
            diff_id: l.diff_id.to_string(),
        })
        .collect();
    let source = image.source.location();
    InspectReport {
        source,
        reference: image.reference.clone(),
        digest: image.manifest_digest.map(|d| d.to_string()),
        config_digest: image.config_digest.to_string(),
        index: image.index.clone(),
        config: ConfigSummary {
            architecture: c.architecture.clone(),
            os: c.os.clone(),
            variant: c.variant.clone(),
            created: c.created.clone(),
            user: c.config.user.clone(),
            env: c.config.env.clone(),
            entrypoint: c.config.entrypoint.clone(),
            cmd: c.config.cmd.clone(),
            working_dir: c.config.working_dir.clone(),
            exposed_ports: c.config.exposed_ports.keys().cloned().collect(),
            labels: c.config.labels.clone(),
        },
        total_size: layers.iter().map(|l| l.size).sum::<u64>() + image.config_size,
        layers,
        history: c
            .history
            .iter()
            .map(|h| h.created_by.clone().unwrap_or_default())
            .collect(),
    }
}

impl InspectReport {
    /// Adds each layer's uncompressed size (as `fsck` measures them, in
    /// layer order).
    pub fn with_unpacked_sizes(mut self, sizes: &[u64]) -> Self {
        for (layer, size) in self.layers.iter_mut().zip(sizes) {
            layer.unpacked_size = Some(*size);
        }
        self
    }
}

/// The compression a layer media type names, for the layer listing.
fn compression_name(media_type: Option<&str>) -> &'static str {
    match media_type {
        Some(m) if m.ends_with("+zstd") || m.ends_with(".zstd") => "zstd",
        Some(m) if m.ends_with("+gzip") || m.ends_with(".gzip") => "gzip",
        Some(m) if m.ends_with(".tar") => "tar",
        _ => "?",
    }
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn opt_list(v: &Option<Vec<String>>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| format!("{v:?}"))
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Source:       {}", self.source)?;
        writeln!(
            f,
            "Reference:    {}",
            self.reference.as_deref().unwrap_or("-")
        )?;
        writeln!(f, "Digest:       {}", self.digest.as_deref().unwrap_or("-"))?;
        writeln!(f, "Config:       {}", self.config_digest)?;
        if let Some(index) = &self.index {
            writeln!(
                f,
                "Index:        {} ({})",
                index.digest,
                index.platforms.join(", ")
            )?;
        }
        let c = &self.config;
        let platform = match &c.variant {
            Some(v) => format!("{}/{}/{v}", c.os, c.architecture),
            None => format!("{}/{}", c.os, c.architecture),
        };
        writeln!(f, "Platform:     {platform}")?;
        writeln!(f, "Created:      {}", c.created.as_deref().unwrap_or("-"))?;
        writeln!(f, "User:         {}", c.user.as_deref().unwrap_or("-"))?;
        writeln!(
            f,
            "WorkingDir:   {}",
            c.working_dir.as_deref().unwrap_or("-")
        )?;
        writeln!(f, "Entrypoint:   {}", opt_list(&c.entrypoint))?;
        writeln!(f, "Cmd:          {}", opt_list(&c.cmd))?;
        for e in &c.env {
            writeln!(f, "Env:          {e}")?;
        }
        for p in &c.exposed_ports {
            writeln!(f, "Expose:       {p}")?;
        }
        for (k, v) in &c.labels {
            writeln!(f, "Label:        {k}={v}")?;
        }
        writeln!(f, "Layers:       {}", self.layers.len())?;
        for (i, l) in self.layers.iter().enumerate() {
            let unpacked = l.unpacked_size.map_or_else(|| "-".to_string(), human_size);
            writeln!(
                f,
                "  {i:>2}  {}  {:<4} {:>10}  unpacked {:>10}  diff_id {}",
                l.digest.as_deref().unwrap_or("(unaddressed blob)"),
                compression_name(l.media_type.as_deref()),
                human_size(l.size),
                unpacked,
                l.diff_id
            )?;
        }
        writeln!(f, "Total size:   {}", human_size(self.total_size))
    }
}
