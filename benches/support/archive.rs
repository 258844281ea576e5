//! A deterministic, realistic WhatsApp archive for benchmarks and load tests.
//!
//! The same [`Spec`] (counts and seed) always yields the same archive, byte for byte: every chat
//! draws from its own RNG seeded from the spec's seed and the chat's number, so chats can be
//! generated in any order, one at a time, without holding a million messages in memory.
//!
//! The shape follows what a phone that has been in use for a few years hands over in a history
//! sync: chat sizes fall off steeply (a few chats hold most of the messages, most chats a
//! handful), a fifth of the chats are groups drawn from the address book, most direct chats are
//! with saved contacts and the rest with numbers that never were, texts come in the chat's
//! language (accented Latin, Cyrillic, Arabic, Chinese and Japanese, English) with emoji and
//! digits mixed in, and about one message in eight carries media with its download metadata.
//!
//! The archive can be written through the project's [`Store`] trait (either backend), replayed
//! as history-sync events, or written in the original bridge's SQLite layout (`messages.db`)
//! so that project's query layer can be measured on the same data.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use whatsapp_mcp::engine::ingest::HistoryConversation;
use whatsapp_mcp::jid::Jid;
use whatsapp_mcp::store::model::{ChatUpdate, ContactUpdate, Media, NewMessage};
use whatsapp_mcp::store::{Store, StoreError};

/// How big an archive to make, and from which seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub messages: u64,
    pub chats: u32,
    pub contacts: u32,
    pub seed: u64,
}

impl Spec {
    /// The full-size archive the benchmarks are quoted for.
    pub const FULL: Spec = Spec {
        messages: 1_000_000,
        chats: 10_000,
        contacts: 2_000,
        seed: 20_260_101,
    };

    /// A small archive with the same shape, for smoke runs.
    pub const SMOKE: Spec = Spec {
        messages: 600,
        chats: 24,
        contacts: 12,
        seed: 7,
    };
}

/// The newest message of the archive is just before this time (2026-01-01T00:00:00Z).
pub const ARCHIVE_END: i64 = 1_767_225_600;

/// The archive covers this many seconds before [`ARCHIVE_END`] (three years).
const ARCHIVE_SPAN: i64 = 3 * 365 * 86_400;

/// A word planted in every [`MARKER_EVERY`]th message (counting across the whole archive), so a
/// search has an answer known in advance.
pub const MARKER: &str = "kilimanjaro";
pub const MARKER_EVERY: u64 = 1_000;

/// Messages per history-sync chunk: WhatsApp's chunks carry a few conversations and up to some
/// thousands of messages; the benchmarks use this size unless told otherwise.
pub const HISTORY_CHUNK: usize = 1_000;

/// Whether a chat is with one person or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Group,
}

/// The language a chat is mostly written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    English,
    German,
    French,
    Spanish,
    Portuguese,
    Russian,
    Arabic,
    Chinese,
    Japanese,
}

impl Language {
    /// How common each language is among chats, in percent.
    const MIX: [(Language, u32); 9] = [
        (Language::English, 22),
        (Language::German, 14),
        (Language::French, 12),
        (Language::Spanish, 14),
        (Language::Portuguese, 8),
        (Language::Russian, 11),
        (Language::Arabic, 7),
        (Language::Chinese, 7),
        (Language::Japanese, 5),
    ];

    pub fn words(self) -> &'static [&'static str] {
        match self {
            Language::English => &[
                "hey", "are", "you", "coming", "tonight", "dinner", "tomorrow", "meeting",
                "thanks", "sounds", "good", "see", "later", "running", "late", "train", "call",
                "me", "when", "free", "weekend", "plans", "pizza", "movie", "birthday", "party",
                "office", "sorry", "missed", "photo", "holiday", "beach", "great", "idea", "love",
                "that", "home", "soon", "traffic", "again",
            ],
            Language::German => &[
                "hallo",
                "kommst",
                "du",
                "heute",
                "abend",
                "morgen",
                "früh",
                "treffen",
                "danke",
                "schön",
                "bis",
                "später",
                "straße",
                "grüße",
                "müde",
                "bahn",
                "verspätet",
                "wochenende",
                "geburtstag",
                "kuchen",
                "für",
                "dich",
                "über",
                "schlüssel",
                "tür",
                "gemütlich",
                "wäsche",
                "brötchen",
                "frühstück",
                "urlaub",
                "strand",
                "natürlich",
                "genau",
                "vielleicht",
                "hätte",
                "gern",
                "äpfel",
                "ärger",
                "möchte",
                "spät",
            ],
            Language::French => &[
                "salut",
                "ça",
                "va",
                "ce",
                "soir",
                "demain",
                "réunion",
                "merci",
                "à",
                "plus",
                "tard",
                "désolé",
                "retard",
                "métro",
                "déjà",
                "bientôt",
                "été",
                "très",
                "bien",
                "fête",
                "anniversaire",
                "gâteau",
                "où",
                "es",
                "tu",
                "château",
                "forêt",
                "crème",
                "café",
                "noël",
                "garçon",
                "leçon",
                "hôpital",
                "élève",
                "week-end",
                "plage",
                "vacances",
                "voilà",
                "peut-être",
                "reçu",
            ],
            Language::Spanish => &[
                "hola",
                "qué",
                "tal",
                "mañana",
                "reunión",
                "gracias",
                "nos",
                "vemos",
                "luego",
                "llego",
                "tarde",
                "perdón",
                "cumpleaños",
                "fiesta",
                "niño",
                "año",
                "también",
                "está",
                "aquí",
                "allí",
                "señor",
                "corazón",
                "canción",
                "café",
                "playa",
                "vacaciones",
                "claro",
                "después",
                "rápido",
                "película",
                "cena",
                "comida",
                "fútbol",
                "partido",
                "mamá",
                "papá",
                "había",
                "quizás",
                "montaña",
                "jamón",
            ],
            Language::Portuguese => &[
                "olá",
                "tudo",
                "bem",
                "amanhã",
                "reunião",
                "obrigado",
                "até",
                "logo",
                "atrasado",
                "desculpa",
                "aniversário",
                "festa",
                "você",
                "não",
                "então",
                "coração",
                "pão",
                "irmão",
                "ação",
                "praia",
                "férias",
                "almoço",
                "jantar",
                "saudade",
                "você",
                "está",
                "avó",
                "avô",
                "cachaça",
                "maçã",
                "coração",
                "lições",
                "mãe",
                "pai",
                "também",
                "ônibus",
                "três",
                "fácil",
                "difícil",
                "ótimo",
            ],
            Language::Russian => &[
                "привет",
                "как",
                "дела",
                "сегодня",
                "вечером",
                "завтра",
                "встреча",
                "спасибо",
                "до",
                "скорого",
                "опаздываю",
                "извини",
                "поезд",
                "позвони",
                "когда",
                "свободен",
                "выходные",
                "планы",
                "день",
                "рождения",
                "праздник",
                "торт",
                "работа",
                "дома",
                "скоро",
                "пробки",
                "отлично",
                "хорошо",
                "конечно",
                "может",
                "ёлка",
                "щи",
                "погода",
                "море",
                "отпуск",
                "фото",
                "ужин",
                "обед",
                "чай",
                "кофе",
            ],
            Language::Arabic => &[
                "مرحبا",
                "كيف",
                "حالك",
                "اليوم",
                "مساء",
                "غدا",
                "اجتماع",
                "شكرا",
                "إلى",
                "اللقاء",
                "متأخر",
                "آسف",
                "القطار",
                "اتصل",
                "بي",
                "عندما",
                "عطلة",
                "نهاية",
                "الأسبوع",
                "عيد",
                "ميلاد",
                "حفلة",
                "كعكة",
                "العمل",
                "البيت",
                "قريبا",
                "زحمة",
                "ممتاز",
                "جيد",
                "طبعا",
                "ربما",
                "الطقس",
                "البحر",
                "صورة",
                "عشاء",
                "غداء",
                "شاي",
                "قهوة",
                "إن",
                "شاء",
            ],
            Language::Chinese => &[
                "你好",
                "今天",
                "晚上",
                "明天",
                "开会",
                "谢谢",
                "再见",
                "迟到",
                "对不起",
                "火车",
                "打电话",
                "周末",
                "计划",
                "生日",
                "快乐",
                "蛋糕",
                "工作",
                "回家",
                "马上",
                "堵车",
                "很好",
                "当然",
                "也许",
                "天气",
                "海边",
                "照片",
                "晚饭",
                "午饭",
                "喝茶",
                "咖啡",
                "朋友",
                "我们",
                "一起",
                "吃饭",
                "怎么样",
                "没问题",
                "好的",
                "等一下",
                "到了",
                "在哪里",
            ],
            Language::Japanese => &[
                "こんにちは",
                "今日",
                "今夜",
                "明日",
                "会議",
                "ありがとう",
                "またね",
                "遅れる",
                "ごめん",
                "電車",
                "電話して",
                "週末",
                "予定",
                "誕生日",
                "おめでとう",
                "ケーキ",
                "仕事",
                "家",
                "すぐ",
                "渋滞",
                "いいね",
                "もちろん",
                "たぶん",
                "天気",
                "海",
                "写真",
                "晩ご飯",
                "昼ご飯",
                "お茶",
                "コーヒー",
                "友達",
                "一緒に",
                "食べよう",
                "大丈夫",
                "了解",
                "ちょっと待って",
                "着いた",
                "どこ",
                "楽しみ",
                "お疲れ様",
            ],
        }
    }

    /// Words are joined with spaces, except in scripts written without them.
    pub fn separator(self) -> &'static str {
        match self {
            Language::Chinese | Language::Japanese => "",
            _ => " ",
        }
    }

    fn first_names(self) -> &'static [&'static str] {
        match self {
            Language::English => &["Emma", "Oliver", "Grace", "Jack", "Chloe", "Harry"],
            Language::German => &["Jürgen", "Lükas", "Björn", "Sophie", "Maximilian", "Änne"],
            Language::French => &["Chloé", "Hélène", "François", "Léa", "Jérôme", "Zoé"],
            Language::Spanish => &["José", "María", "Iñigo", "Lucía", "Sofía", "Andrés"],
            Language::Portuguese => &["João", "Conceição", "Gonçalo", "Inês", "Tomás", "Mónica"],
            Language::Russian => &["Алексей", "Наталья", "Дмитрий", "Ольга", "Сергей", "Юлия"],
            Language::Arabic => &["محمد", "فاطمة", "أحمد", "ليلى", "عمر", "مريم"],
            Language::Chinese => &["王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊"],
            Language::Japanese => &["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺"],
        }
    }

    fn last_names(self) -> &'static [&'static str] {
        match self {
            Language::English => &["Smith", "Taylor", "Brown", "Wilson", "Evans", "Walker"],
            Language::German => &["Müller", "Schäfer", "Groß", "Köhler", "Weiß", "Böhm"],
            Language::French => &["Lefèvre", "Dubois", "Gérard", "Moreau", "Bénard", "Roché"],
            Language::Spanish => &["García", "Núñez", "Martínez", "Peña", "López", "Ibáñez"],
            Language::Portuguese => &["Conceição", "Gonçalves", "Araújo", "Simões", "Brandão"],
            Language::Russian => &["Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов"],
            Language::Arabic => &["العلي", "حسن", "الخطيب", "منصور", "الحداد"],
            Language::Chinese => &["", "", ""],
            Language::Japanese => &["さん", "", ""],
        }
    }

    /// Country calling codes numbers of this language's speakers tend to have.
    fn country_codes(self) -> &'static [&'static str] {
        match self {
            Language::English => &["44", "1", "61"],
            Language::German => &["49", "43", "41"],
            Language::French => &["33", "32", "41"],
            Language::Spanish => &["34", "52", "54"],
            Language::Portuguese => &["351", "55"],
            Language::Russian => &["7", "375"],
            Language::Arabic => &["20", "966", "971"],
            Language::Chinese => &["86", "886"],
            Language::Japanese => &["81"],
        }
    }

    fn group_names(self) -> &'static [&'static str] {
        match self {
            Language::English => &["Family", "Book club", "Football Sunday", "Flat 4B"],
            Language::German => &[
                "Familie Müller",
                "Wandergruppe",
                "Elternabend",
                "Kegelbrüder",
            ],
            Language::French => &["Famille", "Soirée jeux", "Les copains d'école", "Randonnée"],
            Language::Spanish => &["Familia", "Fútbol 5", "Cumpleaños de Lucía", "Vecinos"],
            Language::Portuguese => &["Família", "Futebol de terça", "Churrasco", "Vizinhança"],
            Language::Russian => &["Семья", "Дача", "Одноклассники", "Футбол по средам"],
            Language::Arabic => &["العائلة", "أصدقاء الجامعة", "رحلة الصيف", "الجيران"],
            Language::Chinese => &["家人", "大学同学", "周末爬山", "公司午饭"],
            Language::Japanese => &["家族", "大学の友達", "週末ハイキング", "会社ランチ"],
        }
    }
}

const EMOJI: [&str; 16] = [
    "😂",
    "❤️",
    "👍",
    "🙏",
    "😊",
    "🎉",
    "😭",
    "🔥",
    "😍",
    "🤔",
    "👋",
    "🥳",
    "😅",
    "🙈",
    "💪",
    "👨‍👩‍👧",
];

/// A contact in the generated address book.
#[derive(Clone, Debug)]
pub struct ContactPlan {
    pub jid: Jid,
    pub lid: Option<Jid>,
    pub full_name: Option<String>,
    pub push_name: Option<String>,
    pub language: Language,
}

/// A chat and everything needed to generate its messages again.
#[derive(Clone, Debug)]
pub struct ChatPlan {
    pub jid: Jid,
    pub kind: Kind,
    pub name: Option<String>,
    pub language: Language,
    /// Contacts (indices into [`Archive::contacts`]) who write in this chat; the person of a
    /// direct chat with a stranger is not among them.
    pub members: Vec<usize>,
    pub messages: u64,
    /// The archive-wide number of this chat's first message (for the planted marker).
    pub first_index: u64,
    pub start: i64,
    pub end: i64,
    pub pinned: bool,
    pub archived: bool,
    pub unread: u32,
    pub muted_until: Option<i64>,
}

/// A planned archive: contacts and chats with their sizes; messages are made on demand.
#[derive(Clone, Debug)]
pub struct Archive {
    pub spec: Spec,
    pub contacts: Vec<ContactPlan>,
    pub chats: Vec<ChatPlan>,
}

/// A 64-bit mix of the seed and a stream number, so each chat has an RNG of its own.
fn stream_seed(seed: u64, stream: u64) -> u64 {
    // SplitMix64's finaliser: neighbouring inputs give unrelated outputs.
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(rng: &mut fastrand::Rng, items: &'a [&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

fn pick_language(rng: &mut fastrand::Rng) -> Language {
    let total: u32 = Language::MIX.iter().map(|(_, w)| w).sum();
    let mut roll = rng.u32(..total);
    for (language, weight) in Language::MIX {
        if roll < weight {
            return language;
        }
        roll -= weight;
    }
    Language::English
}

/// An exponentially distributed value with the given mean.
fn exponential(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.f64()).ln()
}

fn phone_number(rng: &mut fastrand::Rng, language: Language) -> String {
    let code = pick(rng, language.country_codes());
    let digits = 11 - code.len().min(3);
    let mut number = String::from(code);
    number.push(char::from(b'1' + rng.u8(..9)));
    for _ in 1..digits {
        number.push(char::from(b'0' + rng.u8(..10)));
    }
    number
}

fn jid(text: &str) -> Jid {
    Jid::parse(text).unwrap_or_else(|err| panic!("generated an invalid JID {text}: {err}"))
}

/// Splits `total` into `parts` sizes that fall off like Zipf's law (exponent 1), each at
/// least one when there are enough to go round, in an order shuffled by `rng`.
fn skewed_sizes(rng: &mut fastrand::Rng, total: u64, parts: usize) -> Vec<u64> {
    let weights: Vec<f64> = (0..parts).map(|rank| 1.0 / (rank as f64 + 1.0)).collect();
    let sum: f64 = weights.iter().sum();
    let floor = u64::from(total >= parts as u64);
    let spare = total - floor * parts as u64;
    let mut sizes: Vec<u64> = weights
        .iter()
        .map(|w| floor + (spare as f64 * w / sum) as u64)
        .collect();
    // Rounding down leaves a few messages over; the biggest chats take them.
    let mut left = total - sizes.iter().sum::<u64>();
    let mut rank = 0;
    while left > 0 {
        sizes[rank % parts] += 1;
        left -= 1;
        rank += 1;
    }
    rng.shuffle(&mut sizes);
    sizes
}

impl Archive {
    /// Plans the archive: who, which chats, how many messages each, and when.
    pub fn plan(spec: Spec) -> Archive {
        assert!(
            spec.chats > 0 && spec.contacts > 0,
            "need chats and contacts"
        );
        let mut rng = fastrand::Rng::with_seed(stream_seed(spec.seed, u64::MAX));
        let mut numbers = std::collections::HashSet::new();
        let mut fresh_number = |rng: &mut fastrand::Rng, language| loop {
            let number = phone_number(rng, language);
            if numbers.insert(number.clone()) {
                return number;
            }
        };
        let contacts: Vec<ContactPlan> = (0..spec.contacts)
            .map(|_| {
                let language = pick_language(&mut rng);
                let phone = fresh_number(&mut rng, language);
                let first = pick(&mut rng, language.first_names());
                let last = pick(&mut rng, language.last_names());
                let full = format!("{first} {last}").trim().to_owned();
                // Most people are saved in the address book; some only have a push name.
                let saved = rng.u8(..100) < 85;
                ContactPlan {
                    jid: jid(&format!("{phone}@s.whatsapp.net")),
                    lid: (rng.u8(..100) < 30)
                        .then(|| jid(&format!("{}@lid", 100_000_000_000_000 + rng.u64(..1 << 40)))),
                    full_name: saved.then_some(full),
                    push_name: (!saved || rng.bool()).then(|| first.to_owned()),
                    language,
                }
            })
            .collect();

        let chat_count = spec.chats as usize;
        let groups = chat_count / 5;
        let sizes = skewed_sizes(&mut rng, spec.messages, chat_count);
        let mut chats = Vec::with_capacity(chat_count);
        let mut first_index = 0;
        for (n, &messages) in sizes.iter().enumerate() {
            let (kind, jid_text, members, language, name) = if n < groups {
                let language = pick_language(&mut rng);
                // Group sizes are skewed too: most are small, a few have hundreds.
                let size = (2.0 + exponential(&mut rng, 10.0)).min(256.0) as usize;
                let mut members: Vec<usize> = (0..size.min(contacts.len()))
                    .map(|_| rng.usize(..contacts.len()))
                    .collect();
                members.sort_unstable();
                members.dedup();
                let name = format!(
                    "{} {}",
                    pick(&mut rng, language.group_names()),
                    pick(&mut rng, &EMOJI)
                );
                let jid = format!("120363{:012}@g.us", 100_000_000_000 + n as u64);
                (Kind::Group, jid, members, language, Some(name))
            } else if n - groups < contacts.len() {
                let contact = n - groups;
                let person = &contacts[contact];
                (
                    Kind::Direct,
                    person.jid.to_string(),
                    vec![contact],
                    person.language,
                    None,
                )
            } else {
                // Someone who wrote once (a delivery, a shop, a friend of a friend).
                let language = pick_language(&mut rng);
                let jid = format!("{}@s.whatsapp.net", fresh_number(&mut rng, language));
                (Kind::Direct, jid, Vec::new(), language, None)
            };
            // Bigger chats have been going on for longer.
            let span = ((ARCHIVE_SPAN as f64)
                * (0.05 + 0.95 * (messages as f64 / 5_000.0).min(1.0)))
                as i64;
            let end =
                ARCHIVE_END - (exponential(&mut rng, 20.0 * 86_400.0) as i64).min(ARCHIVE_SPAN / 2);
            let start = end - span.max(3_600);
            chats.push(ChatPlan {
                jid: jid(&jid_text),
                kind,
                name,
                language,
                members,
                messages,
                first_index,
                start,
                end,
                pinned: n % 997 == 3,
                archived: rng.u8(..100) < 8,
                unread: if rng.u8(..100) < 15 {
                    rng.u32(1..40)
                } else {
                    0
                },
                muted_until: (kind == Kind::Group && rng.bool())
                    .then_some(ARCHIVE_END + 365 * 86_400),
            });
            first_index += messages;
        }
        Archive {
            spec,
            contacts,
            chats,
        }
    }

    pub fn total_messages(&self) -> u64 {
        self.spec.messages
    }

    /// How many messages contain [`MARKER`].
    pub fn marker_count(&self) -> u64 {
        self.spec.messages.div_ceil(MARKER_EVERY)
    }

    /// The chat with the most messages.
    pub fn biggest_chat(&self) -> usize {
        (0..self.chats.len())
            .max_by_key(|&n| (self.chats[n].messages, std::cmp::Reverse(n)))
            .unwrap_or(0)
    }

    /// The address-book entries, as the engine reports them.
    pub fn contact_updates(&self) -> Vec<ContactUpdate> {
        self.contacts
            .iter()
            .map(|c| {
                let mut update = ContactUpdate::new(c.jid.clone());
                update.full_name.clone_from(&c.full_name);
                update.first_name = c
                    .full_name
                    .as_deref()
                    .and_then(|n| n.split(' ').next())
                    .map(str::to_owned);
                update.push_name.clone_from(&c.push_name);
                update
            })
            .collect()
    }

    /// LID ↔ phone pairs known for some contacts.
    pub fn lid_links(&self) -> Vec<(Jid, Jid)> {
        self.contacts
            .iter()
            .filter_map(|c| c.lid.clone().map(|lid| (lid, c.jid.clone())))
            .collect()
    }

    /// Chat metadata (names, pins, mutes, unread counts).
    pub fn chat_update(&self, n: usize) -> ChatUpdate {
        let chat = &self.chats[n];
        let mut update = ChatUpdate::new(chat.jid.clone());
        update.name.clone_from(&chat.name);
        update.pinned = Some(chat.pinned);
        update.archived = Some(chat.archived);
        update.unread_count = Some(chat.unread);
        update.muted_until = chat.muted_until;
        update
    }

    /// Groups and their members (the first member is the admin who made it).
    pub fn groups(&self) -> Vec<(Jid, Vec<(Jid, String)>)> {
        self.chats
            .iter()
            .filter(|c| c.kind == Kind::Group)
            .map(|c| {
                let members = c
                    .members
                    .iter()
                    .enumerate()
                    .map(|(i, &m)| {
                        let role = if i == 0 {
                            "superadmin"
                        } else if i % 17 == 1 {
                            "admin"
                        } else {
                            "member"
                        };
                        (self.contacts[m].jid.clone(), role.to_owned())
                    })
                    .collect();
                (c.jid.clone(), members)
            })
            .collect()
    }

    /// Every message of chat `n`, oldest first; the same on every call.
    pub fn chat_messages(&self, n: usize) -> Vec<NewMessage> {
        let chat = &self.chats[n];
        let mut rng = fastrand::Rng::with_seed(stream_seed(self.spec.seed, n as u64));
        let count = chat.messages as usize;
        // Conversations come in bursts: mostly seconds to minutes apart, now and then days.
        let mut gaps: Vec<f64> = (0..count)
            .map(|_| {
                if rng.u8(..100) < 85 {
                    exponential(&mut rng, 45.0)
                } else {
                    exponential(&mut rng, 86_400.0)
                }
            })
            .collect();
        let total: f64 = gaps.iter().sum::<f64>().max(1.0);
        let window = (chat.end - chat.start) as f64;
        let scale = (window / total).min(1.0);
        let mut at = chat.end as f64 - total * scale;
        for gap in &mut gaps {
            at += *gap * scale;
            *gap = at;
        }
        let mut ids: Vec<String> = Vec::with_capacity(count);
        let mut messages = Vec::with_capacity(count);
        for (i, when) in gaps.into_iter().enumerate() {
            let index = chat.first_index + i as u64;
            let id = format!("3EB0{:016X}", rng.u64(..));
            let from_me = rng.u8(..100) < if chat.kind == Kind::Group { 15 } else { 45 };
            let sender = if from_me {
                None
            } else {
                match chat.kind {
                    Kind::Direct => Some(chat.jid.clone()),
                    Kind::Group if chat.members.is_empty() => None,
                    Kind::Group => {
                        // A few members do most of the talking.
                        let pick = (exponential(&mut rng, chat.members.len() as f64 / 4.0)
                            as usize)
                            .min(chat.members.len() - 1);
                        let person = &self.contacts[chat.members[pick]];
                        // Groups often name people by their LID; the store must file those
                        // under the phone number.
                        match &person.lid {
                            Some(lid) if rng.bool() => Some(lid.clone()),
                            _ => Some(person.jid.clone()),
                        }
                    }
                }
            };
            let mut text = sentence(&mut rng, chat.language);
            if index.is_multiple_of(MARKER_EVERY) {
                text.push(' ');
                text.push_str(MARKER);
            }
            let media = media(&mut rng, &id);
            let (text, caption) = match &media {
                None => (Some(text), None),
                Some(m)
                    if matches!(m.media_type.as_str(), "image" | "video") && rng.u8(..100) < 40 =>
                {
                    (None, Some(text))
                }
                // The marker must stay findable, so a captionless media message keeps it as text.
                Some(_) if index.is_multiple_of(MARKER_EVERY) => (Some(text), None),
                Some(_) => (None, None),
            };
            let quoted_id = (!ids.is_empty() && rng.u8(..100) < 6)
                .then(|| ids[ids.len() - 1 - rng.usize(..ids.len().min(20))].clone());
            ids.push(id.clone());
            messages.push(NewMessage {
                chat: chat.jid.clone(),
                id,
                sender,
                timestamp: (when as i64).clamp(chat.start, chat.end),
                from_me,
                text,
                caption,
                quoted_id,
                media,
            });
        }
        messages
    }

    /// The whole archive as history-sync chunks of about `chunk` messages: big chats are split
    /// over several chunks, small ones share a chunk.
    pub fn history_chunks(
        &self,
        chunk: usize,
    ) -> impl Iterator<Item = Vec<HistoryConversation>> + '_ {
        let chunk = chunk.max(1);
        let mut next = 0;
        let mut current = 0;
        let mut pending: Vec<NewMessage> = Vec::new();
        std::iter::from_fn(move || {
            let mut conversations: Vec<HistoryConversation> = Vec::new();
            let mut size = 0;
            while size < chunk {
                if pending.is_empty() {
                    if next == self.chats.len() {
                        break;
                    }
                    current = next;
                    next += 1;
                    pending = self.chat_messages(current);
                    // Newest first, the way WhatsApp sends history; a chunk takes the next slice.
                    pending.reverse();
                    if pending.is_empty() {
                        continue;
                    }
                }
                let take = pending.len().min(chunk - size);
                let messages: Vec<NewMessage> = pending.drain(..take).collect();
                size += messages.len();
                conversations.push(HistoryConversation {
                    chat: self.chat_update(current),
                    messages,
                });
            }
            (!conversations.is_empty()).then_some(conversations)
        })
    }

    /// Writes the archive through the store's own API: contacts, LID links, chats, groups, then
    /// messages in history-sized transactions, and waits until all are indexed for search.
    /// Returns how many messages were stored.
    pub async fn write_store(&self, store: &dyn Store) -> Result<u64, StoreError> {
        store.upsert_contacts(self.contact_updates()).await?;
        for (lid, phone) in self.lid_links() {
            store.link_lid(lid, phone).await?;
        }
        let updates: Vec<ChatUpdate> = (0..self.chats.len()).map(|n| self.chat_update(n)).collect();
        for batch in updates.chunks(1_000) {
            store.upsert_chats(batch.to_vec()).await?;
        }
        for (group, members) in self.groups() {
            store.set_participants(group, members).await?;
        }
        let mut stored = 0;
        for conversations in self.history_chunks(HISTORY_CHUNK) {
            let messages = conversations.into_iter().flat_map(|c| c.messages).collect();
            stored += store.insert_messages(messages).await?;
        }
        // SQLite indexes large writes for search in the background; the archive is complete
        // (and its searches measured as they will run) once that has caught up.
        while store.stats().await?.search_backlog > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(stored)
    }

    /// Writes the archive in the original bridge's SQLite layout (its `messages.db`): `chats`
    /// with a name and the last message time, `messages` keyed by (id, chat) with the sender as
    /// a bare number, the text as `content`, and times as `YYYY-MM-DD HH:MM:SS+00:00` strings.
    /// That layout has no contacts table (names lived in the session store), so names only
    /// appear as chat names there.
    pub fn write_original(&self, path: &Path) -> rusqlite::Result<u64> {
        let mut conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS chats (
                 jid TEXT PRIMARY KEY,
                 name TEXT,
                 last_message_time TIMESTAMP
             );
             CREATE TABLE IF NOT EXISTS messages (
                 id TEXT,
                 chat_jid TEXT,
                 sender TEXT,
                 content TEXT,
                 timestamp TIMESTAMP,
                 is_from_me BOOLEAN,
                 media_type TEXT,
                 filename TEXT,
                 url TEXT,
                 media_key BLOB,
                 file_sha256 BLOB,
                 file_enc_sha256 BLOB,
                 file_length INTEGER,
                 PRIMARY KEY (id, chat_jid),
                 FOREIGN KEY (chat_jid) REFERENCES chats(jid)
             );",
        )?;
        let mut stored = 0;
        for n in 0..self.chats.len() {
            let messages = self.chat_messages(n);
            let plan = &self.chats[n];
            let name = plan.name.clone().or_else(|| {
                plan.members
                    .first()
                    .map(|&c| &self.contacts[c])
                    .and_then(|c| c.full_name.clone().or_else(|| c.push_name.clone()))
            });
            let last = messages
                .iter()
                .map(|m| m.timestamp)
                .max()
                .unwrap_or(plan.end);
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO chats (jid, name, last_message_time) VALUES (?1, ?2, ?3)",
                rusqlite::params![plan.jid.as_str(), name, original_time(last)],
            )?;
            {
                let mut insert = tx.prepare(
                    "INSERT OR REPLACE INTO messages (id, chat_jid, sender, content, timestamp,
                         is_from_me, media_type, filename, url, media_key, file_sha256,
                         file_enc_sha256, file_length)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?;
                for m in &messages {
                    let media = m.media.as_ref();
                    // The original kept the bare user part of the sender, and our own number
                    // for messages we sent; a fixed number stands in for "us".
                    let sender = m
                        .sender
                        .as_ref()
                        .map_or_else(|| OWN_NUMBER.to_owned(), |s| s.user().to_owned());
                    let content = m
                        .text
                        .clone()
                        .or_else(|| m.caption.clone())
                        .unwrap_or_default();
                    stored += insert.execute(rusqlite::params![
                        m.id,
                        plan.jid.as_str(),
                        sender,
                        content,
                        original_time(m.timestamp),
                        m.from_me,
                        media.map(|x| x.media_type.clone()).unwrap_or_default(),
                        media.and_then(|x| x.file_name.clone()).unwrap_or_default(),
                        media.and_then(|x| x.url.clone()).unwrap_or_default(),
                        media.and_then(|x| x.media_key.clone()),
                        media.and_then(|x| x.file_sha256.clone()),
                        media.and_then(|x| x.file_enc_sha256.clone()),
                        media.and_then(|x| x.file_length).map(|n| n as i64),
                    ])? as u64;
                }
            }
            tx.commit()?;
        }
        Ok(stored)
    }
}

/// The account's own number in the original layout's `sender` column.
pub const OWN_NUMBER: &str = "31600000000";

fn original_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S+00:00")
        .to_string()
}

/// A message text: a few words in the chat's language, sometimes emoji, numbers or a link.
fn sentence(rng: &mut fastrand::Rng, language: Language) -> String {
    let words = language.words();
    // Short messages dominate; a few are paragraphs.
    let length = 1 + (exponential(rng, 6.0) as usize).min(60);
    let mut text = String::new();
    for i in 0..length {
        if i > 0 {
            text.push_str(language.separator());
        }
        text.push_str(pick(rng, words));
    }
    // Now and then a word from another language slips in (names of places, loanwords).
    if rng.u8(..100) < 5 {
        text.push(' ');
        text.push_str(pick(rng, Language::English.words()));
    }
    match rng.u8(..100) {
        0..=24 => {
            text.push(' ');
            text.push_str(pick(rng, &EMOJI));
        }
        25..=29 => text = pick(rng, &EMOJI).repeat(1 + rng.usize(..3)),
        30..=37 => text.push_str(&format!(" {}:{:02}", rng.u8(7..23), rng.u8(..60))),
        38..=40 => text.push_str(&format!(" €{}.{:02}", rng.u16(1..500), rng.u8(..100))),
        41..=42 => text.push_str(&format!(
            " +{}",
            30_000_000_000u64 + rng.u64(..9_000_000_000)
        )),
        43..=44 => text.push_str(&format!(" https://example.com/p/{}", rng.u32(..1_000_000))),
        _ => {}
    }
    text
}

/// Media metadata for about one message in eight.
fn media(rng: &mut fastrand::Rng, id: &str) -> Option<Media> {
    let (media_type, mime, size, name): (&str, &str, u64, Option<String>) = match rng.u16(..1000) {
        0..=59 => ("image", "image/jpeg", rng.u64(40_000..4_000_000), None),
        60..=79 => ("video", "video/mp4", rng.u64(500_000..60_000_000), None),
        80..=99 => (
            "voice",
            "audio/ogg; codecs=opus",
            rng.u64(3_000..900_000),
            None,
        ),
        100..=104 => ("audio", "audio/mpeg", rng.u64(500_000..9_000_000), None),
        105..=119 => {
            let (stem, ext, mime) = match rng.u8(..5) {
                0 => ("Rechnung_März", "pdf", "application/pdf"),
                1 => (
                    "договор",
                    "docx",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                ),
                2 => ("boarding-pass", "pdf", "application/pdf"),
                3 => (
                    "会議資料",
                    "pptx",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                ),
                _ => (
                    "planilha_orçamento",
                    "xlsx",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ),
            };
            let name = format!("{stem}_{}.{ext}", rng.u16(1..400));
            ("document", mime, rng.u64(20_000..20_000_000), Some(name))
        }
        120..=124 => ("sticker", "image/webp", rng.u64(8_000..120_000), None),
        _ => return None,
    };
    let mut key = vec![0u8; 32];
    rng.fill(&mut key);
    let mut sha = vec![0u8; 32];
    rng.fill(&mut sha);
    let mut enc = vec![0u8; 32];
    rng.fill(&mut enc);
    let path = format!("/v/t62.7118-24/{}_{}", rng.u64(..1 << 40), &id[4..]);
    Some(Media {
        media_type: media_type.to_owned(),
        file_name: name,
        mime_type: Some(mime.to_owned()),
        file_length: Some(size),
        url: Some(format!("https://mmg.whatsapp.net{path}?ccb=11-4")),
        direct_path: Some(path),
        media_key: Some(key),
        file_sha256: Some(sha),
        file_enc_sha256: Some(enc),
    })
}
