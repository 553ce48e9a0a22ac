void parasite_entry(void) { for (;;) ; }
