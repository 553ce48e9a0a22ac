void restorer_entry(void) { for (;;) ; }
