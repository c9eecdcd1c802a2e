//! civicflow-policies: the bundled procedures of DOMAIN.md, written in the policy language.
//!
//! Each `.cf` file beside this crate's `Cargo.toml` is one policy, embedded at build time with
//! `include_str!`, so the server ships them without runtime paths. Every rule a policy encodes
//! carries a comment naming its DOMAIN.md id (`// R2.14 …`), and every reading of a vague
//! document is stated in a comment where it is taken.
//!
//! | file | policy | DOMAIN.md rules |
//! |---|---|---|
//! | `reform_pilot.cf` | 优化社区"两员"配置改革试点 | R1.1–R1.6 |
//! | `election.cf` | 社区两委换届选举 | R2.1–R2.18, R2.20 |
//! | `community_access.cf` | 社区工作准入 | R3.1–R3.3 |
//! | `residents_demand.cf` | 居民诉求"绿色通道" | R3.4–R3.6 |
//! | `property_service.cf` | 物业服务监督与社区党组织同意事项 | R4.1–R4.3 (and R3.6's prerequisite) |
//! | `community_assessment.cf` | 街道社区工作月度考核 | R3.7, R0.3 |
//! | `stability_assessment.cf` | 稳定风险评估 | R3.6 |
//! | `committee_standardisation.cf` | 居(村)委会规范化建设 | R5.1–R5.3 |

/// One bundled policy source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bundled {
    /// The policy's name as written after `policy` in the file.
    pub name: &'static str,
    /// The file name, relative to this crate's directory.
    pub file: &'static str,
    /// The policy text.
    pub source: &'static str,
}

/// Every bundled policy, in DOMAIN.md order.
pub static BUNDLED: &[Bundled] = &[
    Bundled { name: "reform_pilot", file: "reform_pilot.cf", source: include_str!("../reform_pilot.cf") },
    Bundled { name: "election", file: "election.cf", source: include_str!("../election.cf") },
    Bundled { name: "community_access", file: "community_access.cf", source: include_str!("../community_access.cf") },
    Bundled { name: "residents_demand", file: "residents_demand.cf", source: include_str!("../residents_demand.cf") },
    Bundled { name: "property_service", file: "property_service.cf", source: include_str!("../property_service.cf") },
    Bundled {
        name: "community_assessment",
        file: "community_assessment.cf",
        source: include_str!("../community_assessment.cf"),
    },
    Bundled {
        name: "stability_assessment",
        file: "stability_assessment.cf",
        source: include_str!("../stability_assessment.cf"),
    },
    Bundled {
        name: "committee_standardisation",
        file: "committee_standardisation.cf",
        source: include_str!("../committee_standardisation.cf"),
    },
];

/// The bundled policy with this name.
pub fn get(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_declares_the_policy_it_is_listed_as() {
        for b in BUNDLED {
            let header = format!("policy {} {{", b.name);
            assert!(b.source.contains(&header), "{} does not declare `policy {}`", b.file, b.name);
            assert_eq!(b.file, format!("{}.cf", b.name));
        }
    }

    #[test]
    fn get_finds_by_name() {
        assert_eq!(get("election").map(|b| b.file), Some("election.cf"));
        assert_eq!(get("nothing"), None);
    }
}
