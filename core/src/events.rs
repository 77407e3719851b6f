//! Typed payloads of the common organisation events, for Stream (`data` with camelCase keys)
//! and HTTP callbacks (PascalCase keys) alike; every other event stays raw JSON
//! ([`OrgEvent::Other`]). Read one with [`Event::typed`](crate::model::Event::typed).
//!
//! | `eventType` | variant | payload |
//! |---|---|---|
//! | `user_add_org`, `user_modify_org`, `user_leave_org`, `user_active_org` | `UserJoined`, `UserModified`, `UserLeft`, `UserActivated` | [`UserChange`] |
//! | `org_admin_add`, `org_admin_remove` | `AdminAdded`, `AdminRemoved` | [`UserChange`] |
//! | `org_dept_create`, `org_dept_modify`, `org_dept_remove` | `DeptCreated`, `DeptModified`, `DeptRemoved` | [`DeptChange`] |
//! | `chat_add_member`, `chat_remove_member`, `chat_quit`, `chat_update_owner`, `chat_update_title`, `chat_disband` | `Group(..)` | [`GroupChange`] |
//! | `bpms_instance_change` | `ApprovalInstance` | [`ApprovalInstance`] |
//! | `bpms_task_change` | `ApprovalTask` | [`ApprovalTask`] |
//!
//! Numbers sent as strings (`"timeStamp": "1685501863357"`) and ids sent as one value instead
//! of a list are accepted; a payload that does not fit its type is an error, never a panic.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An organisation event, typed when it is a common one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OrgEvent {
    /// `user_add_org`: users joined the organisation.
    UserJoined(UserChange),
    /// `user_modify_org`: users' profiles changed.
    UserModified(UserChange),
    /// `user_leave_org`: users left.
    UserLeft(UserChange),
    /// `user_active_org`: users activated their account.
    UserActivated(UserChange),
    /// `org_admin_add`: users became administrators.
    AdminAdded(UserChange),
    /// `org_admin_remove`: users are no longer administrators.
    AdminRemoved(UserChange),
    /// `org_dept_create`.
    DeptCreated(DeptChange),
    /// `org_dept_modify`.
    DeptModified(DeptChange),
    /// `org_dept_remove`.
    DeptRemoved(DeptChange),
    /// A group chat changed (`chat_*`); [`GroupChange::kind`] says how.
    Group(GroupChange),
    /// `bpms_instance_change`: an approval started, finished or was terminated.
    ApprovalInstance(ApprovalInstance),
    /// `bpms_task_change`: an approval task changed.
    ApprovalTask(ApprovalTask),
    /// Any other event: its type and raw data.
    Other {
        /// `eventType`.
        event_type: String,
        /// The data as sent.
        data: Value,
    },
}

/// Users who changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct UserChange {
    /// The users' ids.
    #[serde(
        alias = "userId",
        alias = "UserId",
        alias = "userIds",
        deserialize_with = "ids"
    )]
    pub user_ids: Vec<String>,
    /// When (Unix ms), if sent.
    #[serde(
        alias = "timeStamp",
        alias = "TimeStamp",
        alias = "timestamp",
        deserialize_with = "number"
    )]
    pub time_stamp: Option<i64>,
    /// Who made the change, if sent.
    #[serde(alias = "optStaffId", alias = "OptStaffId", deserialize_with = "text")]
    pub operator: Option<String>,
}

/// Departments that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeptChange {
    /// The departments' ids (as strings: DingTalk sends numbers).
    #[serde(alias = "deptId", alias = "DeptId", deserialize_with = "ids")]
    pub dept_ids: Vec<String>,
    /// When (Unix ms), if sent.
    #[serde(
        alias = "timeStamp",
        alias = "TimeStamp",
        alias = "timestamp",
        deserialize_with = "number"
    )]
    pub time_stamp: Option<i64>,
}

/// What happened to a group chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupChangeKind {
    /// `chat_add_member`.
    MembersAdded,
    /// `chat_remove_member`.
    MembersRemoved,
    /// `chat_quit`.
    MemberQuit,
    /// `chat_update_owner`.
    OwnerChanged,
    /// `chat_update_title`.
    TitleChanged,
    /// `chat_disband`.
    Disbanded,
}

/// A group chat's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// How it changed.
    pub kind: GroupChangeKind,
    /// The chat's ids and the users concerned.
    pub detail: GroupDetail,
}

/// The fields of a group chat's change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GroupDetail {
    /// `ChatId` (the old chat id).
    #[serde(alias = "chatId", alias = "ChatId", deserialize_with = "text")]
    pub chat_id: Option<String>,
    /// `OpenConversationId`, if sent.
    #[serde(
        alias = "openConversationId",
        alias = "OpenConversationId",
        deserialize_with = "text"
    )]
    pub open_conversation_id: Option<String>,
    /// Who did it.
    #[serde(alias = "operator", alias = "Operator", deserialize_with = "text")]
    pub operator: Option<String>,
    /// The users concerned (added, removed, the new owner).
    #[serde(alias = "userId", alias = "UserId", deserialize_with = "ids")]
    pub user_ids: Vec<String>,
    /// The new title, for a title change.
    #[serde(alias = "title", alias = "Title", deserialize_with = "text")]
    pub title: Option<String>,
    /// When (Unix ms), if sent.
    #[serde(alias = "timeStamp", alias = "TimeStamp", deserialize_with = "number")]
    pub time_stamp: Option<i64>,
}

/// An approval instance's change (`bpms_instance_change`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ApprovalInstance {
    /// `processInstanceId`.
    #[serde(alias = "processInstanceId", deserialize_with = "text")]
    pub process_instance_id: Option<String>,
    /// `processCode`: the approval form.
    #[serde(alias = "processCode", deserialize_with = "text")]
    pub process_code: Option<String>,
    /// `type`: `start`, `finish` or `terminate`.
    #[serde(alias = "type", deserialize_with = "text")]
    pub change: Option<String>,
    /// `result` when finished: `agree` or `refuse`.
    #[serde(deserialize_with = "text")]
    pub result: Option<String>,
    /// `staffId`: who started it.
    #[serde(alias = "staffId", deserialize_with = "text")]
    pub staff_id: Option<String>,
    /// `title`.
    #[serde(deserialize_with = "text")]
    pub title: Option<String>,
    /// `createTime` (Unix ms).
    #[serde(alias = "createTime", deserialize_with = "number")]
    pub create_time: Option<i64>,
    /// `finishTime` (Unix ms), when finished.
    #[serde(alias = "finishTime", deserialize_with = "number")]
    pub finish_time: Option<i64>,
}

/// An approval task's change (`bpms_task_change`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ApprovalTask {
    /// `processInstanceId`.
    #[serde(alias = "processInstanceId", deserialize_with = "text")]
    pub process_instance_id: Option<String>,
    /// `taskId`.
    #[serde(alias = "taskId", deserialize_with = "text")]
    pub task_id: Option<String>,
    /// `type`: `start`, `finish`, `cancel`.
    #[serde(alias = "type", deserialize_with = "text")]
    pub change: Option<String>,
    /// `result`: `agree`, `refuse`, `redirect`.
    #[serde(deserialize_with = "text")]
    pub result: Option<String>,
    /// `staffId`: the task's owner.
    #[serde(alias = "staffId", deserialize_with = "text")]
    pub staff_id: Option<String>,
    /// `remark`.
    #[serde(deserialize_with = "text")]
    pub remark: Option<String>,
}

impl OrgEvent {
    /// Types `data` of an event of `event_type`. A payload that does not fit its type is an
    /// error (the raw event stays available to the caller).
    pub fn parse(event_type: &str, data: &Value) -> Result<Self, serde_json::Error> {
        const TYPED: [&str; 17] = [
            "user_add_org",
            "user_modify_org",
            "user_leave_org",
            "user_active_org",
            "org_admin_add",
            "org_admin_remove",
            "org_dept_create",
            "org_dept_modify",
            "org_dept_remove",
            "chat_add_member",
            "chat_remove_member",
            "chat_quit",
            "chat_update_owner",
            "chat_update_title",
            "chat_disband",
            "bpms_instance_change",
            "bpms_task_change",
        ];
        if !TYPED.contains(&event_type) {
            return Ok(Self::Other {
                event_type: event_type.to_owned(),
                data: data.clone(),
            });
        }
        let empty = Value::Object(serde_json::Map::new());
        let data = match data {
            Value::Null => &empty,
            Value::Object(_) => data,
            _ => {
                return Err(<serde_json::Error as serde::de::Error>::custom(
                    "the event data is not an object",
                ));
            }
        };
        let user = || UserChange::deserialize(data);
        let dept = || DeptChange::deserialize(data);
        let group = |kind| {
            GroupDetail::deserialize(data).map(|detail| Self::Group(GroupChange { kind, detail }))
        };
        Ok(match event_type {
            "user_add_org" => Self::UserJoined(user()?),
            "user_modify_org" => Self::UserModified(user()?),
            "user_leave_org" => Self::UserLeft(user()?),
            "user_active_org" => Self::UserActivated(user()?),
            "org_admin_add" => Self::AdminAdded(user()?),
            "org_admin_remove" => Self::AdminRemoved(user()?),
            "org_dept_create" => Self::DeptCreated(dept()?),
            "org_dept_modify" => Self::DeptModified(dept()?),
            "org_dept_remove" => Self::DeptRemoved(dept()?),
            "chat_add_member" => group(GroupChangeKind::MembersAdded)?,
            "chat_remove_member" => group(GroupChangeKind::MembersRemoved)?,
            "chat_quit" => group(GroupChangeKind::MemberQuit)?,
            "chat_update_owner" => group(GroupChangeKind::OwnerChanged)?,
            "chat_update_title" => group(GroupChangeKind::TitleChanged)?,
            "chat_disband" => group(GroupChangeKind::Disbanded)?,
            "bpms_instance_change" => Self::ApprovalInstance(ApprovalInstance::deserialize(data)?),
            "bpms_task_change" => Self::ApprovalTask(ApprovalTask::deserialize(data)?),
            other => Self::Other {
                event_type: other.to_owned(),
                data: data.clone(),
            },
        })
    }
}

/// A list of ids: strings or numbers, a list or one value (numbers become strings).
fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    let v = Value::deserialize(d)?;
    Ok(match &v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        Value::Null => Vec::new(),
        other => one(other).into_iter().collect(),
    })
}

/// A number sent as a number or a string.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A string sent as a string or a number.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)] // tests abort on failure
    use super::*;
    use serde_json::json;

    #[test]
    fn stream_and_http_shapes_both_type() {
        // The documented Stream example (strings for numbers, camelCase).
        let stream = OrgEvent::parse(
            "user_add_org",
            &json!({"timestamp" : "1685501863357", "userId" : ["015xxxx227"]}),
        )
        .unwrap();
        assert_eq!(
            stream,
            OrgEvent::UserJoined(UserChange {
                user_ids: vec!["015xxxx227".into()],
                time_stamp: Some(1_685_501_863_357),
                operator: None,
            })
        );
        // HTTP callbacks: PascalCase, numbers as numbers, one id alone.
        let http = OrgEvent::parse(
            "org_dept_create",
            &json!({"EventType": "org_dept_create", "TimeStamp": 1, "DeptId": [42, 43], "CorpId": "c"}),
        )
        .unwrap();
        assert_eq!(
            http,
            OrgEvent::DeptCreated(DeptChange {
                dept_ids: vec!["42".into(), "43".into()],
                time_stamp: Some(1)
            })
        );
        let g = OrgEvent::parse(
            "chat_update_title",
            &json!({"ChatId": "chat1", "Title": "new", "Operator": "u9"}),
        )
        .unwrap();
        let OrgEvent::Group(g) = g else { panic!() };
        assert_eq!(
            (
                g.kind,
                g.detail.title.as_deref(),
                g.detail.operator.as_deref()
            ),
            (GroupChangeKind::TitleChanged, Some("new"), Some("u9"))
        );
    }

    #[test]
    fn approvals_unknown_events_and_odd_payloads() {
        let a = OrgEvent::parse("bpms_instance_change", &json!({"processInstanceId": "p1", "type": "finish", "result": "agree", "finishTime": 5})).unwrap();
        let OrgEvent::ApprovalInstance(a) = a else {
            panic!()
        };
        assert_eq!(
            (a.change.as_deref(), a.result.as_deref(), a.finish_time),
            (Some("finish"), Some("agree"), Some(5))
        );
        assert!(matches!(
            OrgEvent::parse("check_in", &json!({"x": 1})).unwrap(),
            OrgEvent::Other { .. }
        ));
        assert!(matches!(
            OrgEvent::parse("check_in", &json!([1])).unwrap(),
            OrgEvent::Other { .. }
        ));
        // Not an object: an error, never a panic.
        assert!(OrgEvent::parse("user_add_org", &json!([1, 2])).is_err());
        assert!(OrgEvent::parse("user_add_org", &Value::Null).is_ok());
        // Wrong types inside are tolerated, not fatal.
        let odd = OrgEvent::parse(
            "user_leave_org",
            &json!({"userId": {"a": 1}, "timeStamp": "soon"}),
        )
        .unwrap();
        assert_eq!(odd, OrgEvent::UserLeft(UserChange::default()));
    }
}
