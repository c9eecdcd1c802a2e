#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use super::*;

fn fmt(src: &str) -> String {
    format_source(src).map_err(|d| format!("{} at {:?}", d.message, d.span)).expect("parses")
}

/// Everything badly laid out, comments everywhere.
const MESSY: &str = "\u{FEFF}// 社区两委换届选举
   // seed 003
policy   election{// after the brace
title \"社区\\u{4E24}委\"   // trailing header
  version \"2012.1\"   timezone \"Asia/Shanghai\"
calendar   \"cn\"\r
param 党员人数 :int
  param 开始:date=2012-03-21 param 社区列表 : list< text > = [ \"甲社区\" ,\"乙社区\", ]
  const 任期年数:int=3
  // R2.4
  let 组织类型 : text = match 党员人数{..=50=>\"党支部\",51..=99=>  \"党总支\", // 中间
  100.. =>\"党委\",}
  let 代表:int=if 党员人数<=1500{50}else{ if 党员人数 <= 3000 { 80 } else {50+floor((党员人数-1500)/100)}}
  let 引号: text = \"说\\\"好\\\"\\\\n\\t末\"
  role 街道党工委 \"街道党工委\"\u{3000}role 社区党组织 // 两个角色\r
  template 公示 \"\"\"
  {{社区}}候选人公示:{{#each 候选人}}{{this}} {{/each}}
  \"\"\"
  procedure 子程序 { param 名单: list<text>
    step 登记: task { by 社区党组织 } }
  phase 选前准备 \"选前准备\"{
    // 窗口
    window 开始..开始+10 days
    phase 内层 { step 告知: filing step 张榜 : publicity{min 3 days
      on objection return 告知
    }}
    step 提名: task {
      by 社区党组织
      form {
        党员联名: int
        居民联名: int optional   // 可选
        // R2.8
        require 党员联名 >= 10 or // 或
          居民联名 >= 50 else \"联名提名需至少10名党员或50名居民\"
      }
      // 步骤末尾
    }   // 提名之后
    step 资格审查: approval { by 街道党工委,社区党组织 rule >=2/3 after 提名
      due 5 workdays roll remind 1 workdays before
      on breach escalate 街道党工委 , overdue
      on rejected return 提名
    }
    step 调用: call 子程序 { with 名单 = 社区列表 }
    step 空: meeting {  }
  }
  recur every 3 years
  // 末尾
}   // 文件末
// 最后
";

const CANONICAL: &str = r#"// 社区两委换届选举
// seed 003
policy election {
  // after the brace
  title "社区两委" // trailing header
  version "2012.1"
  timezone "Asia/Shanghai"
  calendar "cn"

  param 党员人数: int
  param 开始: date = 2012-03-21
  param 社区列表: list<text> = ["甲社区", "乙社区"]
  const 任期年数: int = 3
  // R2.4
  // 中间
  let 组织类型: text = match 党员人数 {
    ..=50 => "党支部",
    51..=99 => "党总支",
    100.. => "党委",
  }
  let 代表: int = if 党员人数 <= 1500 { 50 } else if 党员人数 <= 3000 { 80 } else { 50 + floor((党员人数 - 1500) / 100) }
  let 引号: text = "说\"好\"\\n\t末"

  role 街道党工委 "街道党工委"
  role 社区党组织 // 两个角色

  template 公示 """
  {{社区}}候选人公示:{{#each 候选人}}{{this}} {{/each}}
  """

  procedure 子程序 {
    param 名单: list<text>

    step 登记: task {
      by 社区党组织
    }
  }

  phase 选前准备 "选前准备" {
    // 窗口
    window 开始 .. 开始 + 10 days

    phase 内层 {
      step 告知: filing

      step 张榜: publicity {
        min 3 days
        on objection return 告知
      }
    }

    step 提名: task {
      by 社区党组织
      form {
        党员联名: int
        居民联名: int optional // 可选
        // R2.8
        // 或
        require 党员联名 >= 10 or 居民联名 >= 50 else "联名提名需至少10名党员或50名居民"
      }
      // 步骤末尾
    } // 提名之后

    step 资格审查: approval {
      by 街道党工委, 社区党组织
      rule >= 2/3
      after 提名
      due 5 workdays roll
      remind 1 workdays before
      on breach escalate 街道党工委, overdue
      on rejected return 提名
    }

    step 调用: call 子程序 {
      with 名单 = 社区列表
    }

    step 空: meeting {}
  }

  recur every 3 years
  // 末尾
} // 文件末
// 最后
"#;

#[test]
fn messy_policy_formats_to_the_canonical_layout() {
    assert_eq!(fmt(MESSY), CANONICAL);
}

#[test]
fn canonical_layout_is_a_fixed_point_with_the_same_meaning() {
    assert_eq!(fmt(CANONICAL), CANONICAL);
    let before = syntax::parse(MESSY).expect("parses");
    let after = syntax::parse(CANONICAL).expect("parses");
    assert_eq!(after.policy, before.policy);
    let texts = |f: &File| f.comments.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&after), texts(&before));
}

#[test]
fn comments_in_block_heads_go_inside_and_empty_blocks_stay_short() {
    let src = "policy p { step a // 头\n : task { } phase b \"t\" // 标题后\n {} step c: task // 无块\n }";
    let expected = "\
policy p {
  step a: task {
    // 头
  }

  phase b \"t\" {
    // 标题后
  }

  step c: task // 无块
}
";
    assert_eq!(fmt(src), expected);
    assert_eq!(fmt(expected), expected);
}

#[test]
fn parentheses_are_kept_and_never_added() {
    let src = "policy p { let x: int = ((1+2))*-(3) - - 4/(a.b).c + -a.b
      let y: bool = not (a and b) or not a < b and (not a) < b
      let z: int = f( ) + g(1,[ ],[2 ,3,] ) }";
    let expected = "\
policy p {
  let x: int = ((1 + 2)) * -(3) - -4 / (a.b).c + -a.b
  let y: bool = not (a and b) or not a < b and (not a) < b
  let z: int = f() + g(1, [], [2, 3])
}
";
    assert_eq!(fmt(src), expected);
    assert_eq!(syntax::parse(expected).expect("parses").policy, syntax::parse(src).expect("parses").policy);
}

#[test]
fn a_comment_after_a_multi_line_item_stays_on_its_last_line() {
    let src = "policy p {
  let x: int = match a { 1 => match b { _ => 2 }, _ => 3 } // 注
  step s: task { when x > 1 } // 后
}";
    let expected = "\
policy p {
  let x: int = match a {
    1 => match b {
      _ => 2,
    },
    _ => 3,
  } // 注

  step s: task {
    when x > 1
  } // 后
}
";
    assert_eq!(fmt(src), expected);
    assert_eq!(fmt(expected), expected);
}

#[test]
fn strings_are_re_escaped_and_triple_quoted_ones_kept() {
    let src = "policy p { title \"a\\u{22}b\\\\c\\nd\\te\\rf\" template t \"\"\"x \"y\" \\n\r\n z\"\"\" }";
    let expected = "policy p {\n  title \"a\\\"b\\\\c\\nd\\te\\rf\"\n\n  template t \"\"\"x \"y\" \\n\r\n z\"\"\"\n}\n";
    assert_eq!(fmt(src), expected);
    assert_eq!(fmt(expected), expected);
}
