package tray

import (
	"embed"
	"fmt"

	"fyne.io/fyne/v2/lang"
)

// translations are go-i18n JSON catalogues keyed by the English text; the
// catalogue test checks that every lang.L key used in this package is in
// each of them.
//
//go:embed translations/*.json
var translations embed.FS

// LoadTranslations registers the catalogues with Fyne; lang picks the one
// matching the user's locale (LANGUAGE, LC_ALL, LC_MESSAGES, LANG).
func LoadTranslations() error {
	if err := lang.AddTranslationsFS(translations, "translations"); err != nil {
		return fmt.Errorf("load translations: %w", err)
	}
	return nil
}
