//! The organisation the emulator keeps: users, departments and scene groups, answered on the
//! old-style (oapi, `errcode`) endpoints with DingTalk's shapes and codes
//! (reference/openapi.md §8): `/topapi/v2/user/{get,create,update,delete}`,
//! `/topapi/v2/department/listsub`, `/topapi/im/chat/scenegroup/{create,get,update,
//! member/add,member/delete,member/get}`. It starts with two users (`sim-staff-1` "Sim User",
//! `sim-staff-2` "Sim Colleague") in two departments (1 "Sim Corp", 2 "Engineering").

use std::collections::{BTreeMap, BTreeSet};

use axum::response::Response;
use serde_json::{Value, json};

use crate::{oapi_error, ok_json};

/// A user of the emulated organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    /// `userid`.
    pub userid: String,
    /// `name`.
    pub name: String,
    /// `title`.
    pub title: String,
    /// `dept_id_list`.
    pub depts: Vec<i64>,
}

/// A scene group (a group created from a template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneGroup {
    /// `open_conversation_id`.
    pub open_conversation_id: String,
    /// `chat_id`.
    pub chat_id: String,
    /// `title`.
    pub title: String,
    /// `template_id`.
    pub template_id: String,
    /// `owner_user_id`.
    pub owner: String,
    /// Members' user ids (the owner included).
    pub members: BTreeSet<String>,
    /// Sub-administrators.
    pub sub_admins: BTreeSet<String>,
}

/// The organisation's state.
#[derive(Debug)]
pub(crate) struct Directory {
    pub(crate) users: BTreeMap<String, SimUser>,
    depts: BTreeMap<i64, (String, i64)>,
    pub(crate) groups: BTreeMap<String, SceneGroup>,
    next: u64,
}

impl Default for Directory {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        for (id, name, title) in [
            ("sim-staff-1", "Sim User", "Engineer"),
            ("sim-staff-2", "Sim Colleague", "Designer"),
        ] {
            users.insert(
                id.to_owned(),
                SimUser {
                    userid: id.to_owned(),
                    name: name.to_owned(),
                    title: title.to_owned(),
                    depts: vec![2],
                },
            );
        }
        let mut depts = BTreeMap::new();
        depts.insert(1, ("Sim Corp".to_owned(), 0));
        depts.insert(2, ("Engineering".to_owned(), 1));
        Self {
            users,
            depts,
            groups: BTreeMap::new(),
            next: 0,
        }
    }
}

/// Most users and groups the emulator keeps (creating more fails).
const MAX_ENTRIES: usize = 10_000;

fn s<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key].as_str().unwrap_or_default().trim()
}

/// A comma-separated id list (`"a,b"`), or a JSON array.
fn ids(body: &Value, key: &str) -> Vec<String> {
    match &body[key] {
        Value::String(list) => list
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn missing(field: &str) -> Response {
    oapi_error(40035, &format!("缺少参数 {field}"))
}

fn no_user() -> Response {
    oapi_error(60121, "找不到该用户")
}

fn no_group() -> Response {
    oapi_error(
        4000003,
        "OpenConversationId 对应的群不是由群模板创建的或没有酷应用支持",
    )
}

impl Directory {
    /// Answers a directory call, or `None` when `path` is not one.
    pub(crate) fn handle(&mut self, path: &str, body: &Value) -> Option<Response> {
        Some(match path {
            "/topapi/v2/user/get" => self.user_get(body),
            "/topapi/v2/user/create" => self.user_create(body),
            "/topapi/v2/user/update" => self.user_update(body),
            "/topapi/v2/user/delete" => self.user_delete(body),
            "/topapi/v2/department/listsub" => self.listsub(body),
            "/topapi/im/chat/scenegroup/create" => self.group_create(body),
            "/topapi/im/chat/scenegroup/get" => self.group_get(body),
            "/topapi/im/chat/scenegroup/update" => self.group_update(body),
            "/topapi/im/chat/scenegroup/member/add" => self.members(body, true),
            "/topapi/im/chat/scenegroup/member/delete" => self.members(body, false),
            "/topapi/im/chat/scenegroup/member/get" => self.member_get(body),
            _ => return None,
        })
    }

    fn user_json(u: &SimUser) -> Value {
        json!({"userid": u.userid, "unionid": format!("union-{}", u.userid), "name": u.name,
               "title": u.title, "dept_id_list": u.depts, "active": true, "admin": false,
               "boss": false, "leader_in_dept": [], "role_list": []})
    }

    fn user_get(&self, body: &Value) -> Response {
        let id = s(body, "userid");
        if id.is_empty() {
            return missing("userid");
        }
        match self.users.get(id) {
            Some(u) => ok_json(json!({"errcode": 0, "errmsg": "ok", "result": Self::user_json(u)})),
            None => no_user(),
        }
    }

    fn user_create(&mut self, body: &Value) -> Response {
        let name = s(body, "name");
        if name.is_empty() {
            return missing("name");
        }
        if self.users.len() >= MAX_ENTRIES {
            return oapi_error(60103, "员工数量已达上限");
        }
        self.next += 1;
        let id = match s(body, "userid") {
            "" => format!("sim-user-{}", self.next),
            given => given.to_owned(),
        };
        if self.users.contains_key(&id) {
            return oapi_error(60104, "userid 在公司中已存在");
        }
        let depts: Vec<i64> = ids(body, "dept_id_list")
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        if let Some(bad) = depts.iter().find(|d| !self.depts.contains_key(d)) {
            return oapi_error(60003, &format!("部门不存在: {bad}"));
        }
        let user = SimUser {
            userid: id.clone(),
            name: name.to_owned(),
            title: s(body, "title").to_owned(),
            depts: if depts.is_empty() { vec![1] } else { depts },
        };
        self.users.insert(id.clone(), user);
        ok_json(json!({"errcode": 0, "errmsg": "ok",
                       "result": {"userid": id, "unionId": format!("union-{id}")}}))
    }

    fn user_update(&mut self, body: &Value) -> Response {
        let id = s(body, "userid");
        if id.is_empty() {
            return missing("userid");
        }
        let Some(user) = self.users.get_mut(id) else {
            return no_user();
        };
        if let Some(name) = body["name"].as_str() {
            name.clone_into(&mut user.name);
        }
        if let Some(title) = body["title"].as_str() {
            title.clone_into(&mut user.title);
        }
        ok_json(json!({"errcode": 0, "errmsg": "ok"}))
    }

    fn user_delete(&mut self, body: &Value) -> Response {
        let id = s(body, "userid");
        if id.is_empty() {
            return missing("userid");
        }
        if self.users.remove(id).is_none() {
            return no_user();
        }
        for g in self.groups.values_mut() {
            g.members.remove(id);
            g.sub_admins.remove(id);
        }
        ok_json(json!({"errcode": 0, "errmsg": "ok"}))
    }

    fn listsub(&self, body: &Value) -> Response {
        let parent: i64 = match &body["dept_id"] {
            Value::Number(n) => n.as_i64().unwrap_or(1),
            Value::String(x) => x.trim().parse().unwrap_or(1),
            _ => 1,
        };
        if !self.depts.contains_key(&parent) {
            return oapi_error(60003, "部门不存在");
        }
        let result: Vec<Value> = self
            .depts
            .iter()
            .filter(|(_, (_, p))| *p == parent)
            .map(|(id, (name, p))| {
                json!({"dept_id": id, "name": name, "parent_id": p,
                                          "create_dept_group": false, "auto_add_user": false})
            })
            .collect();
        ok_json(json!({"errcode": 0, "errmsg": "ok", "result": result}))
    }

    fn group_create(&mut self, body: &Value) -> Response {
        for field in ["title", "template_id", "owner_user_id"] {
            if s(body, field).is_empty() {
                return missing(field);
            }
        }
        let owner = s(body, "owner_user_id").to_owned();
        if !self.users.contains_key(&owner) {
            return no_user();
        }
        let mut members: BTreeSet<String> = ids(body, "user_ids").into_iter().collect();
        if let Some(bad) = members.iter().find(|u| !self.users.contains_key(*u)) {
            return oapi_error(60121, &format!("找不到该用户: {bad}"));
        }
        if members.len() > 999 {
            return oapi_error(40035, "user_ids 超过 999 人");
        }
        if self.groups.len() >= MAX_ENTRIES {
            return oapi_error(4000001, "群数量已达上限");
        }
        members.insert(owner.clone());
        self.next += 1;
        let cid = format!("cidSimScene{:04}==", self.next);
        let group = SceneGroup {
            open_conversation_id: cid.clone(),
            chat_id: format!("chatsim{:04}", self.next),
            title: s(body, "title").to_owned(),
            template_id: s(body, "template_id").to_owned(),
            owner,
            members,
            sub_admins: ids(body, "subadmin_ids").into_iter().collect(),
        };
        let chat_id = group.chat_id.clone();
        self.groups.insert(cid.clone(), group);
        ok_json(json!({"errcode": 0, "errmsg": "ok", "success": true,
                       "result": {"open_conversation_id": cid, "chat_id": chat_id}}))
    }

    fn group_get(&self, body: &Value) -> Response {
        let cid = s(body, "open_conversation_id");
        if cid.is_empty() {
            return missing("open_conversation_id");
        }
        let Some(g) = self.groups.get(cid) else {
            return no_group();
        };
        ok_json(
            json!({"errcode": 0, "errmsg": "ok", "success": true, "result": {
                "open_conversation_id": g.open_conversation_id, "title": g.title, "icon": "",
                "owner_staff_id": g.owner, "sub_admin_staff_ids": g.sub_admins,
                "member_amount": g.members.len(), "template_id": g.template_id,
                "group_url": format!("dingtalk://dingtalkclient/page/chat?cid={}", g.open_conversation_id),
            }}),
        )
    }

    fn group_update(&mut self, body: &Value) -> Response {
        let cid = s(body, "open_conversation_id");
        if cid.is_empty() {
            return missing("open_conversation_id");
        }
        let owner = s(body, "owner_user_id").to_owned();
        if !owner.is_empty() && !self.users.contains_key(&owner) {
            return no_user();
        }
        let Some(g) = self.groups.get_mut(cid) else {
            return no_group();
        };
        if let Some(t) = body["title"].as_str() {
            t.clone_into(&mut g.title);
        }
        if !owner.is_empty() {
            g.members.insert(owner.clone());
            g.owner = owner;
        }
        ok_json(json!({"errcode": 0, "errmsg": "ok", "success": true}))
    }

    fn members(&mut self, body: &Value, add: bool) -> Response {
        let cid = s(body, "open_conversation_id");
        if cid.is_empty() {
            return missing("open_conversation_id");
        }
        let users = ids(body, "user_ids");
        if users.is_empty() {
            return missing("user_ids");
        }
        if add {
            if let Some(bad) = users.iter().find(|u| !self.users.contains_key(*u)) {
                return oapi_error(60121, &format!("找不到该用户: {bad}"));
            }
        }
        let Some(g) = self.groups.get_mut(cid) else {
            return no_group();
        };
        for u in users {
            if add {
                g.members.insert(u);
            } else if u != g.owner {
                g.members.remove(&u);
                g.sub_admins.remove(&u);
            }
        }
        ok_json(json!({"errcode": 0, "errmsg": "ok", "success": true}))
    }

    fn member_get(&self, body: &Value) -> Response {
        let cid = s(body, "open_conversation_id");
        if cid.is_empty() {
            return missing("open_conversation_id");
        }
        let Some(g) = self.groups.get(cid) else {
            return no_group();
        };
        let cursor = body["cursor"]
            .as_u64()
            .or_else(|| body["cursor"].as_str().and_then(|c| c.parse().ok()))
            .unwrap_or(0);
        let size = body["size"].as_u64().unwrap_or(100).clamp(1, 1000);
        let start = usize::try_from(cursor).unwrap_or(usize::MAX);
        let page: Vec<&String> = g
            .members
            .iter()
            .skip(start)
            .take(usize::try_from(size).unwrap_or(1000))
            .collect();
        let end = start.saturating_add(page.len());
        let has_more = end < g.members.len();
        let nicks: BTreeMap<&String, &str> = page
            .iter()
            .map(|u| (*u, self.users.get(*u).map_or("", |x| x.name.as_str())))
            .collect();
        ok_json(
            json!({"errcode": 0, "errmsg": "ok", "success": true, "result": {
                "has_more": has_more, "next_cursor": if has_more { json!(end) } else { Value::Null },
                "member_user_ids": page, "staff_id_nick_map": nicks,
            }}),
        )
    }
}
