//! The decision tables of the election (R2.4–R2.7, R2.11, R2.12) at every boundary DOMAIN.md
//! names, evaluated from the compiled policy exactly as an instance computes them at start.

use std::collections::BTreeMap;

use civicflow_dsl::eval::derived_values;
use civicflow_dsl::value::Value;
use civicflow_policies::get;

fn election_values(members: i64, households: i64, units: i64) -> BTreeMap<String, Value> {
    let policy = civicflow_dsl::compile(get("election").unwrap().source).unwrap().policy;
    let int = Value::int;
    let params = BTreeMap::from([
        ("社区名称".to_string(), Value::Text("舜耕社区".into())),
        ("党员人数".to_string(), int(members)),
        ("户数".to_string(), int(households)),
        ("单位数".to_string(), int(units)),
        ("党组织席位".to_string(), int(5)),
        ("居委会席位".to_string(), int(5)),
        ("监督委员会席位".to_string(), int(7)),
    ]);
    derived_values(&policy, &params).unwrap()
}

fn text(v: &Value) -> String {
    v.to_string()
}

#[test]
fn r2_4_party_organisation_type_and_size_at_50_51_99_100_members() {
    let cases = [(50, "党支部", 3, 5), (51, "党总支", 5, 7), (99, "党总支", 5, 7), (100, "党委", 7, 9)];
    for (members, kind, low, high) in cases {
        let v = election_values(members, 2000, 20);
        assert_eq!(text(&v["党组织类型"]), kind, "{members} members");
        assert_eq!(v["党组织职数下限"], Value::int(low), "{members} members");
        assert_eq!(v["党组织职数上限"], Value::int(high), "{members} members");
    }
}

#[test]
fn r2_5_residents_committee_size_at_2500_2501_4999_5000_households() {
    let cases = [(2500, 3, 5), (2501, 5, 7), (4999, 5, 7), (5000, 7, 9)];
    for (households, low, high) in cases {
        let v = election_values(60, households, 20);
        assert_eq!(v["居委会职数下限"], Value::int(low), "{households} households");
        assert_eq!(v["居委会职数上限"], Value::int(high), "{households} households");
    }
}

#[test]
fn r2_6_resident_representatives_at_1500_1599_1600_2750_households() {
    let cases = [(1500, 50), (1599, 50), (1600, 51), (2750, 62)];
    for (households, reps) in cases {
        let v = election_values(60, households, 20);
        assert_eq!(v["居民代表下限"], Value::int(reps), "{households} households");
    }
}

#[test]
fn r2_7_unit_representatives_between_ten_and_thirty_percent_of_units() {
    let cases = [(20, 2, 6), (25, 3, 7), (3, 1, 1)];
    for (units, low, high) in cases {
        let v = election_values(60, 2000, units);
        assert_eq!(v["单位代表下限"], Value::int(low), "{units} units");
        assert_eq!(v["单位代表上限"], Value::int(high), "{units} units");
    }
}

#[test]
fn r2_11_and_r2_12_slates_exceed_the_seats_by_thirty_and_twenty_percent() {
    // The party sub-procedure is called with 委员席位 = 党组织席位 (5): ceil(6.5) = 7, ceil(6) = 6.
    let v = election_values(60, 2000, 20);
    let initial: Vec<(&String, &Value)> = v.iter().filter(|(k, _)| k.ends_with("/初步人选下限")).collect();
    let final_: Vec<(&String, &Value)> = v.iter().filter(|(k, _)| k.ends_with("/预备人选下限")).collect();
    assert_eq!(initial.len(), 1, "{initial:?}");
    assert_eq!(initial[0].1, &Value::int(7));
    assert_eq!(final_[0].1, &Value::int(6));
}
