//! A seeded generator of layered object graphs in the old format, for tests, benchmarks and
//! users who want to try the tool at scale.

use std::io::{self, Write};

#[derive(Clone, Copy, Debug)]
pub struct GenerateOptions {
    pub objects: usize,
    pub seed: u64,
    /// Each standardized or application object has 1 to this many parents.
    pub max_parents: usize,
    /// Write the old system's whole field set, not just the fields the orchestrator reads.
    pub full: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            objects: 100,
            seed: 1,
            max_parents: 3,
            full: false,
        }
    }
}

/// Sizes of the three layers: about 40% raw, 35% standardized, 25% application.
fn layer_sizes(n: usize) -> [usize; 3] {
    if n < 3 {
        return [n, 0, 0];
    }
    let raw = (n * 40 / 100).max(1);
    let std = (n * 35 / 100).max(1);
    [raw, std, n - raw - std]
}

/// Ids follow the old numbering (1000s, 2000s, 3000s) while each layer fits in a thousand;
/// beyond that, 10,000,000 + i, 20,000,000 + i, 30,000,000 + i.
fn id_base(sizes: [usize; 3]) -> [u64; 3] {
    if sizes.iter().all(|&s| s <= 1000) {
        [1000, 2000, 3000]
    } else {
        [10_000_000, 20_000_000, 30_000_000]
    }
}

const ZONES: [&str; 3] = ["1-Raw", "2-Standardized", "3-Application"];
const CRITICALITY: [&str; 4] = ["low", "medium", "high", "critical"];

/// Writes a JSON array of `objects` objects. Same options, same bytes.
pub fn generate(options: GenerateOptions, out: &mut impl Write) -> io::Result<()> {
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let sizes = layer_sizes(options.objects);
    let base = id_base(sizes);
    let max_parents = options.max_parents.max(1);
    out.write_all(b"[\n")?;
    let mut first = true;
    let mut parents: Vec<u64> = Vec::with_capacity(max_parents);
    for layer in 0..3 {
        for i in 0..sizes[layer] {
            let id = base[layer] + i as u64;
            parents.clear();
            if layer > 0 {
                let k = rng.usize(1..=max_parents);
                for _ in 0..k {
                    // Mostly the layer below; sometimes an earlier object of the same layer
                    // (deeper chains), rarely raw data straight into the application layer.
                    let roll = rng.u8(0..100);
                    let p = if roll < 12 && i > 0 {
                        base[layer] + rng.u64(0..i as u64)
                    } else if roll < 16 && layer == 2 {
                        base[0] + rng.u64(0..sizes[0] as u64)
                    } else {
                        base[layer - 1] + rng.u64(0..sizes[layer - 1] as u64)
                    };
                    if !parents.contains(&p) {
                        parents.push(p);
                    }
                }
            }
            if !first {
                out.write_all(b",\n")?;
            }
            first = false;
            let parent_text = match parents.len() {
                0 => "null".to_string(),
                1 if rng.bool() => parents[0].to_string(),
                _ => {
                    let sep = if rng.u8(0..10) == 0 { ";" } else { "," };
                    let joined: Vec<String> = parents.iter().map(|p| p.to_string()).collect();
                    format!("\"{}\"", joined.join(sep))
                }
            };
            let crit = CRITICALITY[rng.usize(0..CRITICALITY.len())];
            write!(
                out,
                "{{\"IdObjet\":{id},\"IdObjet_Parent\":{parent_text},\"Zone\":\"{}\",\"NomObjet\":\"object_{id}\",\"Criticité\":\"{crit}\"",
                ZONES[layer]
            )?;
            if options.full {
                write_full_fields(out, id, layer, &mut rng)?;
            }
            out.write_all(b"}")?;
        }
    }
    out.write_all(b"\n]\n")
}

fn write_full_fields(
    out: &mut impl Write,
    id: u64,
    layer: usize,
    rng: &mut fastrand::Rng,
) -> io::Result<()> {
    let format = ["json", "parquet", "parquet"][layer];
    let minute = rng.u8(0..60);
    write!(
        out,
        ",\"NomFichier\":\"object_{id}\",\"Description_Objet\":\"na\",\"Patern\":\"na\",\"TypeAuthentification\":{},\
         \"Scope\":null,\"URI\":\"na\",\"URL\":{},\"parametres\":\"na\",\"Fréquence\":\"{minute} * * * *\",\
         \"NomSource0LookupId\":\"1\",\"NomEntrepriseLookupId\":\"1\",\"CodeDataset0LookupId\":\"{}\",\"EtatObjet\":\"actif\",\
         \"IdEntreprise\":1,\"NomEntreprise\":\"example\",\"CodeEntreprise\":\"EXM\",\"DataLakeName\":\"DataLake\",\
         \"DataLakeRootFolder\":\"EXM\",\"IdSource\":1,\"NomSource\":\"Generated\",\"IdDataset\":{},\"id\":\"{}\",\
         \"Format\":\"{format}\",\"Encoding\":\"utf-8\",\"NiveauHierarchique\":\"year\",\"FileLimit\":null,\"FilePrefix\":null,\
         \"AppendMode\":\"full\",\"Seperator\":\"na\",\"Header\":\"na\",\"Lastrun\":null,\"Cryptedfile\":null",
        if layer == 0 { "\"http basic\"" } else { "null" },
        if layer == 0 {
            format!("\"https://source.example/api/{id}\"")
        } else {
            "null".to_string()
        },
        id % 1000,
        id % 1000,
        id % 1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{LoadOptions, load_graph};

    fn text(options: GenerateOptions) -> String {
        let mut buf = Vec::new();
        generate(options, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(buf).unwrap_or_default()
    }

    #[test]
    fn generated_graphs_are_valid_seeded_and_shared() {
        for full in [false, true] {
            let options = GenerateOptions {
                objects: 500,
                seed: 7,
                max_parents: 4,
                full,
            };
            let a = text(options);
            assert_eq!(a, text(options));
            assert_ne!(a, text(GenerateOptions { seed: 8, ..options }));
            let l = load_graph(
                a.as_str(),
                LoadOptions {
                    strict: true,
                    ..Default::default()
                },
            );
            let g = l
                .graph
                .unwrap_or_else(|| panic!("{}", l.report.render(None)));
            assert_eq!(g.len(), 500);
            let shared = (0..g.len() as u32)
                .filter(|&i| g.children(i).len() > 1)
                .count();
            assert!(shared > 50, "{shared} shared parents");
        }
    }

    #[test]
    fn large_graphs_leave_the_old_numbering() {
        let l = load_graph(
            text(GenerateOptions {
                objects: 5000,
                ..Default::default()
            }),
            LoadOptions::default(),
        );
        assert_eq!(l.graph.map(|g| g.len()), Some(5000));
    }
}
