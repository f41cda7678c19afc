package i18n

// german translates the UI's English messages. A test checks that every
// message the views and handlers use has an entry.
var german = map[string]string{
	// Navigation and page titles
	"Skip to content": "Zum Inhalt springen", "Main": "Hauptmenü", "Dashboard": "Übersicht", "Streams": "Streams",
	"Tasks": "Aufgaben", "Cluster": "Cluster", "Users": "Benutzer", "Audit log": "Protokoll", "API tokens": "API-Tokens",
	"Account": "Konto", "Sign in": "Anmelden", "Sign out": "Abmelden", "Rotate key": "Schlüssel erneuern",
	"Delete stream": "Stream löschen", "Delete task config": "Aufgabenkonfiguration löschen",
	"Not allowed": "Nicht erlaubt", "Not found": "Nicht gefunden", "Bad request": "Ungültige Anfrage",
	"Conflict": "Konflikt", "Something went wrong": "Etwas ist schiefgegangen",
	"Error id": "Fehlerkennung", "Back to the dashboard": "Zurück zur Übersicht", "Cancel": "Abbrechen",
	"The server could not complete the request. The server log has details under this error id.": "Der Server konnte die Anfrage nicht ausführen. Das Serverprotokoll enthält Einzelheiten unter dieser Fehlerkennung.",

	// Sign-in and account
	"Username": "Benutzername", "Password": "Passwort",
	"Wrong username or password, or the account is disabled.": "Benutzername oder Passwort falsch, oder das Konto ist gesperrt.",
	"Too many failed sign-ins. Try again in %d seconds.":      "Zu viele fehlgeschlagene Anmeldungen. Versuchen Sie es in %d Sekunden erneut.",
	"Signed in as %s (%s).":                                   "Angemeldet als %s (%s).", "Language": "Sprache", "From the browser": "Wie im Browser",
	"Save": "Speichern", "Change password": "Passwort ändern", "Current password": "Aktuelles Passwort",
	"New password": "Neues Passwort", "Repeat the new password": "Neues Passwort wiederholen",
	"Changing the password signs out every other session.": "Eine Passwortänderung meldet alle anderen Sitzungen ab.",
	"The current password is wrong.":                       "Das aktuelle Passwort ist falsch.",
	"The two new passwords differ.":                        "Die beiden neuen Passwörter sind verschieden.",
	"Use 8 to 72 characters.":                              "Verwenden Sie 8 bis 72 Zeichen.",

	// Streams
	"New stream": "Neuer Stream", "Application": "Anwendung", "Name": "Name", "Create stream": "Stream anlegen",
	"No streams yet.": "Noch keine Streams.", "Stream": "Stream", "State": "Zustand", "Owner": "Eigentümer",
	"Video": "Video", "Audio": "Audio", "Bitrate": "Bitrate", "Uptime": "Laufzeit", "Viewers": "Zuschauer",
	"Origins": "Origins", "Publishes": "Veröffentlichungen", "disabled": "gesperrt", "live": "live", "offline": "offline",
	"Ingest": "Einspeisung", "Preview": "Vorschau", "Preview of %s": "Vorschau von %s", "Play preview": "Vorschau abspielen",
	"Recent frame of %s": "Aktuelles Bild von %s", "Recent frame, refreshed every 10 seconds": "Aktuelles Bild, alle 10 Sekunden erneuert",
	"No thumbnail while the stream is offline.": "Kein Vorschaubild, solange der Stream offline ist.", "%d players": "%d Zuschauer",
	"Play URLs": "Wiedergabe-URLs", "Task configs": "Aufgabenkonfigurationen", "Add %s": "%s hinzufügen",
	"Manage": "Verwalten", "Disable stream": "Stream sperren", "Enable stream": "Stream freigeben", "Live": "Live",
	"The key was rotated. The old key no longer works: update your encoder.": "Der Schlüssel wurde erneuert. Der alte Schlüssel gilt nicht mehr: Aktualisieren Sie Ihren Encoder.",
	"OBS server": "OBS-Server", "OBS stream key": "OBS-Streamschlüssel", "Copy": "Kopieren", "ffmpeg": "ffmpeg",
	"hidden until the key is revealed": "verborgen, bis der Schlüssel angezeigt wird", "Publish URL": "Veröffentlichungs-URL",
	"Reveal key": "Schlüssel anzeigen", "Only the owner can see the key.": "Nur der Eigentümer sieht den Schlüssel.",
	"No task configs: add a restream, recording, pull or HLS ladder.": "Keine Aufgabenkonfigurationen: Fügen Sie ein Restream, eine Aufnahme, einen Pull oder eine HLS-Leiter hinzu.",
	"Type": "Typ", "Enabled": "Aktiv", "Settings": "Einstellungen", "Actions": "Aktionen", "yes": "ja", "no": "nein",
	"Edit": "Bearbeiten", "Delete": "Löschen",
	"Use %s.": "Verwenden Sie %s.",
	"1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit":                                   "1-64 Zeichen aus A-Z a-z 0-9 _ -, beginnend mit einem Buchstaben oder einer Ziffer",
	"A stream %s/%s already exists.":                                                                        "Einen Stream %s/%s gibt es schon.",
	"Rotate the publish key of %s/%s?":                                                                      "Den Veröffentlichungsschlüssel von %s/%s erneuern?",
	"The old key stops working at once: encoders using it cannot publish again until they get the new key.": "Der alte Schlüssel gilt sofort nicht mehr: Encoder, die ihn verwenden, können erst mit dem neuen Schlüssel wieder senden.",
	"Delete %s/%s with its task configs and tasks?":                                                         "%s/%s mit allen Aufgabenkonfigurationen und Aufgaben löschen?",
	"This cannot be undone.":                                                                                "Das lässt sich nicht rückgängig machen.",

	// Task configs and tasks
	"Target URL":                          "Ziel-URL",
	"Stream key at the target (optional)": "Streamschlüssel beim Ziel (optional)", "Format": "Format",
	"automatic": "automatisch", "Segment length (seconds)": "Segmentlänge (Sekunden)", "Source URL": "Quell-URL",
	"Renditions, one per line: a preset (1080p, 720p, 480p, 360p, audio, copy), name WIDTHxHEIGHT video-kbps audio-kbps, name copy, or name audio audio-kbps": "Varianten, eine pro Zeile: eine Vorlage (1080p, 720p, 480p, 360p, audio, copy), Name BREITExHÖHE Video-kbps Audio-kbps, Name copy oder Name audio Audio-kbps",
	"Edit %s": "%s bearbeiten", "This stream already has a task config named %s.": "Dieser Stream hat schon eine Aufgabenkonfiguration namens %s.",
	"Delete the task config %s of %s?": "Die Aufgabenkonfiguration %s von %s löschen?", "Its running task stops.": "Ihre laufende Aufgabe wird beendet.",
	"Filter": "Filtern", "any": "alle", "Task": "Aufgabe", "Node": "Knoten", "Restarts": "Neustarts", "Exit code": "Exit-Code",
	"Last error": "Letzter Fehler", "Restart": "Neu starten", "Config": "Konfiguration", "desired": "Soll",
	"Reason": "Grund", "Started": "Gestartet", "Updated": "Aktualisiert", "Command": "Befehl", "Last log lines": "Letzte Logzeilen",
	"No tasks. Tasks start when the stream goes live (pull tasks at once).": "Keine Aufgaben. Aufgaben starten, wenn der Stream live geht (Pull-Aufgaben sofort).",
	"restream": "Restream", "record": "Aufnahme", "pull": "Pull", "hls": "HLS",
	"pending": "wartend", "assigned": "zugewiesen", "starting": "startet", "running": "läuft", "backoff": "wartet auf Neustart",
	"failed": "fehlgeschlagen", "stopping": "stoppt", "stopped": "gestoppt",

	// Dashboard and cluster
	"Live now": "Jetzt live", "No stream is live.": "Kein Stream ist live.", "Tasks needing attention": "Aufgaben, die Aufmerksamkeit brauchen",
	"Every task is fine.": "Alle Aufgaben sind in Ordnung.", "Silent nodes": "Stumme Knoten", "All %d nodes report in.": "Alle %d Knoten melden sich.",
	"last heartbeat": "letztes Lebenszeichen", "No node has registered yet.": "Noch hat sich kein Knoten angemeldet.",
	"Liveness": "Erreichbarkeit", "Address": "Adresse", "Load": "Last", "Connections": "Verbindungen", "In": "Ein", "Out": "Aus",
	"Version": "Version", "alive": "erreichbar", "silent": "stumm", "draining": "leert sich",
	"origin": "Origin", "edge": "Edge", "concierge": "Concierge", "cdn-edge": "CDN-Edge", "hls-origin": "HLS-Origin",
	"CDN": "CDN", "%d live edges serve %s of %s.": "%d erreichbare Edges liefern %s von %s.",
	"Edges this egress calls for: %d.": "Edges, die dieser Ausgang braucht: %d.", "Edge": "Edge", "Egress": "Ausgang",
	"Capacity used": "Genutzte Kapazität", "Hit ratio": "Trefferquote", "Requests in flight": "Laufende Anfragen", "Cache": "Cache",

	// Administration
	"Role": "Rolle", "Status": "Status", "Created": "Angelegt", "Role of %s": "Rolle von %s", "Set role": "Rolle setzen",
	"active": "aktiv", "Enable": "Freigeben", "Disable": "Sperren", "New user": "Neuer Benutzer", "Create user": "Benutzer anlegen",
	"admin": "Administrator", "operator": "Operator", "viewer": "Betrachter",
	"1-64 characters of A-Z a-z 0-9 _ . @ -": "1-64 Zeichen aus A-Z a-z 0-9 _ . @ -",
	"Choose admin, operator or viewer.":      "Wählen Sie Administrator, Operator oder Betrachter.",
	"A user %s already exists.":              "Einen Benutzer %s gibt es schon.",
	"New token":                              "Neues Token", "Copy it now: it is shown only once.": "Kopieren Sie es jetzt: Es wird nur einmal angezeigt.",
	"No API tokens.": "Keine API-Tokens.", "Prefix": "Präfix", "Scopes": "Rechte", "Last used": "Zuletzt benutzt",
	"revoked": "widerrufen", "Revoke": "Widerrufen", "Create token": "Token anlegen", "read": "lesen", "write": "schreiben",
	"Only admins can make tokens with the admin scope.": "Nur Administratoren können Tokens mit Administratorrechten anlegen.",
	"Use at most 100 characters.":                       "Verwenden Sie höchstens 100 Zeichen.",
	"Actor":                                             "Akteur", "Action": "Aktion", "Object": "Objekt", "%d events": "%d Ereignisse", "Time": "Zeit", "Result": "Ergebnis",
	"Details": "Details", "Pages": "Seiten", "Newer": "Neuere", "Older": "Ältere",

	// Confirmations after a change
	"The stream was created.": "Der Stream wurde angelegt.", "The stream was updated.": "Der Stream wurde geändert.",
	"The stream was deleted.": "Der Stream wurde gelöscht.", "The task config was saved.": "Die Aufgabenkonfiguration wurde gespeichert.",
	"The task config was deleted.": "Die Aufgabenkonfiguration wurde gelöscht.", "The task will restart.": "Die Aufgabe wird neu gestartet.",
	"Your password was changed. Other sessions were signed out.": "Ihr Passwort wurde geändert. Andere Sitzungen wurden abgemeldet.",
	"The language was saved.":                                    "Die Sprache wurde gespeichert.", "The user was created.": "Der Benutzer wurde angelegt.",
	"The user was updated.": "Der Benutzer wurde geändert.", "The token was revoked.": "Das Token wurde widerrufen.",

	// Refusals
	"this stream belongs to another operator":                                      "Dieser Stream gehört einem anderen Operator.",
	"this task belongs to another operator's stream":                               "Diese Aufgabe gehört zum Stream eines anderen Operators.",
	"this page does not exist":                                                     "Diese Seite gibt es nicht.",
	"viewers have read-only access":                                                "Betrachter haben nur Lesezugriff.",
	"this page is for administrators":                                              "Diese Seite ist Administratoren vorbehalten.",
	"the form's security token is missing or stale: reload the page and try again": "Das Sicherheitstoken des Formulars fehlt oder ist veraltet: Laden Sie die Seite neu und versuchen Sie es noch einmal.",
}
